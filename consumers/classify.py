"""What a failure means for the record that met it: retry, dead-letter, count, or stop.

The one place that decides. Classes and SQLSTATE classes only, never message text:

=====================================================  ==========  ===============================
failure                                                kind        what the worker does
=====================================================  ==========  ===============================
``psycopg.OperationalError`` (08 connection, 40        TRANSIENT   roll the batch back, back off
serialization/deadlock, 53 resources, 55P03 lock                   with jitter, retry; never
timeout, 57 statement timeout/admin shutdown, ...),                dead-letter
``ReadOnlySqlTransaction``, ``IdleInTransaction...``,
``RetriableError`` (``DatabaseUnavailableError``),
``BrokerError``, a non-fatal ``KafkaException`` (a
handler's own producer); anything caused by one of these
``UnknownFingerprintError``                            PENDING     hold the partition there and
                                                                   retry until the grace period
                                                                   is over, then dead-letter
``SchemaError`` (bad magic, corrupt body, too large,   POISON      dead-letter now
incompatible schema, failed validation), a tombstone,
no event id, ``PoisonError`` from a handler
``ConfigError``, ``psycopg.ProgrammingError`` (42:     FATAL       stop the worker, offset stays:
undefined table, syntax, privilege), a fatal                       the code or deployment is wrong,
``KafkaException``                                                 not the record
anything else a handler raises                         UNEXPECTED  count it durably; hold and retry
                                                                   until ``max_attempts``, then
                                                                   dead-letter
=====================================================  ==========  ===============================

Public names: ``Kind``, ``classify``, ``is_transient``.
"""

from __future__ import annotations

from enum import StrEnum

import psycopg

from oncepipe.db import SESSION_FAILURES
from oncepipe.errors import BrokerError, ConfigError, PoisonError, RetriableError
from oncepipe.kafka import KafkaError, KafkaException
from schemas import SchemaError, UnknownFingerprintError

__all__ = ["Kind", "classify", "is_transient"]


class Kind(StrEnum):
    """What kind of failure an exception is, for the record that met it."""

    TRANSIENT = "transient"
    PENDING = "pending"
    POISON = "poison"
    UNEXPECTED = "unexpected"
    FATAL = "fatal"


# Failover to a standby (25006) and the server ending an idle session (25P03) are about the
# session, not the record (oncepipe.db.SESSION_FAILURES).
_TRANSIENT: tuple[type[BaseException], ...] = (
    *SESSION_FAILURES,
    RetriableError,
    BrokerError,
)
_CHAIN_LIMIT = 16


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what caused it (``raise ... from``, or raised while handling)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < _CHAIN_LIMIT:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _fatal_broker_error(error: BaseException) -> bool:
    """A librdkafka error that no retry can cure (a fenced or misconfigured client)."""
    if not isinstance(error, KafkaException):
        return False
    code = error.args[0] if error.args else None
    return isinstance(code, KafkaError) and code.fatal()


def _transient_link(link: BaseException) -> bool:
    if isinstance(link, KafkaException):
        return not _fatal_broker_error(link)
    return isinstance(link, _TRANSIENT)


def is_transient(error: BaseException) -> bool:
    """True when the error, or anything that led to it, is a transient failure.

    A handler that wraps a dropped connection in its own exception must not turn a database
    outage into dead letters, so the whole cause chain is looked at.
    """
    return any(_transient_link(link) for link in _chain(error))


def classify(error: BaseException) -> Kind:
    """The kind of ``error`` (see the module's table)."""
    if is_transient(error):
        return Kind.TRANSIENT
    if isinstance(error, UnknownFingerprintError):
        return Kind.PENDING
    if isinstance(error, SchemaError | PoisonError):
        return Kind.POISON
    if isinstance(error, ConfigError | psycopg.ProgrammingError) or _fatal_broker_error(error):
        return Kind.FATAL
    return Kind.UNEXPECTED
