"""Broker errors raised in a handler, and transient causes behind a handler's own exception."""

from __future__ import annotations

import psycopg

from consumers.classify import Kind, classify
from oncepipe.kafka import KafkaError, KafkaException


class LookupFailedError(Exception):
    """A handler's own exception class."""


def _raised_from(cause: BaseException) -> LookupFailedError:
    try:
        raise cause
    except BaseException as exc:  # noqa: BLE001 - building a chain
        try:
            raise LookupFailedError("lookup failed") from exc
        except LookupFailedError as wrapped:
            return wrapped


def test_a_non_fatal_broker_error_in_a_handler_is_transient() -> None:
    error = KafkaException(KafkaError(KafkaError._TRANSPORT, "connection reset"))
    assert classify(error) is Kind.TRANSIENT


def test_a_fatal_broker_error_in_a_handler_stops_the_worker() -> None:
    error = KafkaException(KafkaError(KafkaError._FENCED, "producer fenced", fatal=True))
    assert classify(error) is Kind.FATAL


def test_a_handler_exception_raised_from_a_read_only_session_is_transient() -> None:
    assert classify(_raised_from(psycopg.errors.ReadOnlySqlTransaction())) is Kind.TRANSIENT


def test_a_handler_exception_raised_from_a_broker_error_is_transient() -> None:
    cause = KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "delivery timed out"))
    assert classify(_raised_from(cause)) is Kind.TRANSIENT
