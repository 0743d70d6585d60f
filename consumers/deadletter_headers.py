"""How a consumer records a failure: where (``Stage``), why (``Failure``), in which headers.

The consumer core writes dead letters with these headers (``consumers.deadletters``); the DLQ
tool (``consumers.dlq``) reads them back. Both import this module, which needs only the
plumbing, so the core never pulls in the tool.

oncepipe's dead letters carry the original record's key and value bytes untouched (a
tombstone's null value stays null), the original record's headers as they were (bytes: NUL
bytes, invalid UTF-8 and null values survive), and these plain UTF-8 string headers (readable
in kcat, kafka-ui and AKHQ):

=========================  ===============================================================
``dlq.original.topic``     topic the record was consumed from
``dlq.original.partition`` its partition (decimal)
``dlq.original.offset``    its offset (decimal)
``dlq.original.timestamp`` its Kafka timestamp, milliseconds since the epoch (decimal)
``dlq.consumer.group``     the consumer group that gave up on it
``dlq.stage``              ``decode``, ``validate`` or ``handle``
``dlq.error.class``        qualified class name of the error
``dlq.error.message``      the error message (at most ``MAX_MESSAGE_BYTES``)
``dlq.attempts``           how many times it was tried (decimal)
``dlq.first.failure``      first failure, ISO-8601 UTC
``dlq.last.failure``       last failure, ISO-8601 UTC
``dlq.stacktrace``         the stack trace (at most ``MAX_STACKTRACE_BYTES``)
``dlq.headers.unreadable`` only when the client could not read the original headers (a
                           header name that is not UTF-8): why; they are not in the letter
=========================  ===============================================================

Public names: ``Stage``, ``STAGES``, ``Failure``, ``dead_letter_headers``,
``DeadLetterFormatError``, the header name constants, ``MAX_MESSAGE_BYTES``,
``MAX_STACKTRACE_BYTES``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from oncepipe.errors import OncepipeError
from oncepipe.kafka import RawHeaders

__all__ = [
    "ATTEMPTS",
    "CONSUMER_GROUP",
    "ERROR_CLASS",
    "ERROR_MESSAGE",
    "FIRST_FAILURE",
    "HEADERS_UNREADABLE",
    "LAST_FAILURE",
    "MAX_MESSAGE_BYTES",
    "MAX_STACKTRACE_BYTES",
    "ONCEPIPE_HEADERS",
    "ORIGINAL_OFFSET",
    "ORIGINAL_PARTITION",
    "ORIGINAL_TIMESTAMP",
    "ORIGINAL_TOPIC",
    "PREFIX",
    "RETRY_ATTEMPTS",
    "STACKTRACE",
    "STAGE",
    "STAGES",
    "DeadLetterFormatError",
    "Failure",
    "Stage",
    "dead_letter_headers",
]


class DeadLetterFormatError(OncepipeError):
    """A record has no dead-letter headers of any known dialect, or malformed ones."""


# A header of a few KB is fine for Kafka and the UIs; the DLQ topic has headroom for them.
MAX_MESSAGE_BYTES = 4096
MAX_STACKTRACE_BYTES = 8192

Stage = Literal["decode", "validate", "handle", "crash"]
STAGES: tuple[Stage, ...] = ("decode", "validate", "handle", "crash")

PREFIX = "dlq."
RETRY_ATTEMPTS = PREFIX + "retry.attempts"
"""JSON list of an event's delayed retries (``RetryLater``): attempt, failed_at, delay_s, error."""
ORIGINAL_TOPIC = "dlq.original.topic"
ORIGINAL_PARTITION = "dlq.original.partition"
ORIGINAL_OFFSET = "dlq.original.offset"
ORIGINAL_TIMESTAMP = "dlq.original.timestamp"
CONSUMER_GROUP = "dlq.consumer.group"
STAGE = "dlq.stage"
ERROR_CLASS = "dlq.error.class"
ERROR_MESSAGE = "dlq.error.message"
ATTEMPTS = "dlq.attempts"
FIRST_FAILURE = "dlq.first.failure"
LAST_FAILURE = "dlq.last.failure"
STACKTRACE = "dlq.stacktrace"
HEADERS_UNREADABLE = "dlq.headers.unreadable"
ONCEPIPE_HEADERS = (
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_TIMESTAMP,
    CONSUMER_GROUP,
    STAGE,
    ERROR_CLASS,
    ERROR_MESSAGE,
    ATTEMPTS,
    FIRST_FAILURE,
    LAST_FAILURE,
    STACKTRACE,
)


@dataclass(frozen=True)
class Failure:
    """What went wrong: the error's class, message and stack trace, as text."""

    error_class: str
    message: str
    stacktrace: str = ""

    @classmethod
    def from_exception(cls, error: BaseException) -> Failure:
        """The failure an exception describes, with its formatted traceback."""
        kind = type(error)
        module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
        return cls(
            error_class=f"{module}{kind.__qualname__}",
            message=str(error),
            stacktrace="".join(traceback.format_exception(error)),
        )


def _bounded(text: str, limit: int, *, keep_tail: bool = False) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, saying how much was cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    marker = f"\n... [{len(data) - limit} bytes cut] ...\n"
    room = max(limit - len(marker.encode()) - 8, 0)
    if not keep_tail:
        return data[:room].decode("utf-8", "ignore") + marker.rstrip("\n .")
    # A Python traceback ends with the raising frame and the error; a Java one starts with
    # them. Keep both ends so either reads well.
    head = data[: room // 4].decode("utf-8", "ignore")
    tail = data[len(data) - (room - room // 4) :].decode("utf-8", "ignore")
    return head + marker + tail


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; dead-letter times must be aware (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def dead_letter_headers(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    consumer_group: str,
    stage: Stage,
    failure: Failure | BaseException,
    attempts: int,
    first_failure: datetime,
    last_failure: datetime | None = None,
    original_headers: RawHeaders = (),
    headers_unreadable: str | None = None,
    retry_attempts: str | None = None,
) -> list[tuple[str, str | bytes | None]]:
    """The headers of a dead letter: the original record's, then oncepipe's ``dlq.*`` ones.

    The original headers keep their order and their values as they were (bytes or None); any
    ``dlq.*`` header among them (a dead letter of a dead letter) is dropped so the new ones are
    the only ones. ``headers_unreadable`` (why the client could not read the original headers)
    adds ``dlq.headers.unreadable``. Message and stack trace are cut to ``MAX_MESSAGE_BYTES``
    and ``MAX_STACKTRACE_BYTES``. Times must be timezone-aware. ``retry_attempts`` (the JSON
    list of an event's delayed retries) becomes ``dlq.retry.attempts``.
    """
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    if attempts < 1:
        raise ValueError(f"attempts={attempts}: a dead letter failed at least once")
    if isinstance(failure, BaseException):
        failure = Failure.from_exception(failure)
    headers: list[tuple[str, str | bytes | None]] = [
        (name, raw) for name, raw in original_headers if not name.startswith(PREFIX)
    ]
    if headers_unreadable is not None:
        headers.append((HEADERS_UNREADABLE, _bounded(headers_unreadable, MAX_MESSAGE_BYTES)))
    headers += [
        (ORIGINAL_TOPIC, topic),
        (ORIGINAL_PARTITION, str(partition)),
        (ORIGINAL_OFFSET, str(offset)),
    ]
    if timestamp_ms is not None and timestamp_ms >= 0:
        headers.append((ORIGINAL_TIMESTAMP, str(timestamp_ms)))
    headers += [
        (CONSUMER_GROUP, consumer_group),
        (STAGE, stage),
        (ERROR_CLASS, failure.error_class),
        (ERROR_MESSAGE, _bounded(failure.message, MAX_MESSAGE_BYTES)),
        (ATTEMPTS, str(attempts)),
        (FIRST_FAILURE, _iso(first_failure)),
        (LAST_FAILURE, _iso(last_failure or first_failure)),
    ]
    if retry_attempts is not None:
        headers.append((RETRY_ATTEMPTS, retry_attempts))
    if failure.stacktrace:
        headers.append(
            (STACKTRACE, _bounded(failure.stacktrace, MAX_STACKTRACE_BYTES, keep_tail=True))
        )
    return headers
