"""Dead-letter messages and stack traces name fields and kinds, never payload bytes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg

from consumers.redact import describe
from oncepipe.errors import PoisonError
from schemas import ClickAction, ClickEvent, Codec, SchemaError

CODEC = Codec.load()
PAYLOAD_MARK = "payload-mark-91c2"


def _decode_error(value: bytes) -> SchemaError:
    (result,) = CODEC.decode_batch([value])
    assert isinstance(result, SchemaError)
    return result


def _click(user: str) -> bytes:
    event = ClickEvent(
        event_id=uuid.uuid4(),
        user_id=user,
        item_id="item",
        action=ClickAction.CLICK,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        session_id=PAYLOAD_MARK,
    )
    return CODEC.encode(event).value


def test_a_validation_failure_lists_field_paths_and_error_types_not_values() -> None:
    # user_id "x" is Avro bytes 02 78; 00 makes it the empty string the model refuses.
    error = _decode_error(_click("x").replace(b"\x02x", b"\x00", 1))
    failure = describe(error)
    assert "user_id" in failure.message
    assert "string_too_short" in failure.message
    assert PAYLOAD_MARK not in failure.message + failure.stacktrace


def test_bad_magic_does_not_echo_the_leading_bytes() -> None:
    failure = describe(_decode_error(b'{"user": "' + PAYLOAD_MARK.encode() + b'"}'))
    assert "c3 01" in failure.message
    assert "7b" not in failure.message
    assert PAYLOAD_MARK not in failure.message + failure.stacktrace


def test_a_truncated_body_names_its_writer_schema_only() -> None:
    value = _click("user-1")
    failure = describe(_decode_error(value[:-8]))
    assert "truncated or corrupt" in failure.message
    assert value[2:10].hex() in failure.message
    assert PAYLOAD_MARK not in failure.message + failure.stacktrace


def test_a_database_error_gives_its_sqlstate_not_the_offending_value() -> None:
    failure = describe(psycopg.errors.NumericValueOutOfRange(f"value {PAYLOAD_MARK} out of range"))
    assert "SQLSTATE" in failure.message
    assert PAYLOAD_MARK not in failure.message + failure.stacktrace


def test_a_plain_exception_keeps_its_class_and_frames_but_not_its_message() -> None:
    def handler() -> None:
        raise ValueError(f"bad user {PAYLOAD_MARK}")

    try:
        handler()
    except ValueError as exc:
        failure = describe(exc)
    assert failure.error_class == "ValueError"
    assert "in handler" in failure.stacktrace
    assert PAYLOAD_MARK not in failure.message + failure.stacktrace


def test_a_poison_error_keeps_the_message_its_handler_wrote() -> None:
    failure = describe(PoisonError("item i-1 is retired"))
    assert failure.error_class == "oncepipe.errors.PoisonError"
    assert failure.message == "item i-1 is retired"
