"""Failure fingerprints, dead-letter selection and the hex dump, without services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.dlq.fingerprint import fingerprint, group_failures, mask
from consumers.dlq.headers import DeadLetter
from consumers.dlq.payload import decode_payload, hex_dump
from consumers.dlq.reader import Selection, is_dlq_topic
from schemas import Codec

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def letter(offset: int, message: str, *, error: str = "KeyError", **fields: object) -> DeadLetter:
    values: dict[str, object] = {
        "dlq_topic": "events.click.dlq",
        "dlq_partition": 0,
        "dlq_offset": offset,
        "dialect": "oncepipe",
        "source_topic": "events.click",
        "source_partition": 0,
        "source_offset": offset,
        "source_timestamp": None,
        "consumer_group": "clicks",
        "stage": "handle",
        "error_class": error,
        "error_message": message,
        "attempts": 1,
        "first_failure": T0 + timedelta(minutes=offset),
        "last_failure": T0 + timedelta(minutes=offset),
        "stacktrace": "",
        "event_id": f"id-{offset}",
        "event_type": "ClickEvent",
        "key": b"k",
        "value": b"v",
        **fields,
    }
    return DeadLetter(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("user 6f1c2a52-2f4e-4c55-9d2b-0d8a4c1e7b11 not found", "user <uuid> not found"),
        ("writer schema 8a8f25cce724dd63 unknown", "writer schema <hex> unknown"),
        (
            "the message starts with 7b 22 6a 73, not c3 01",
            "the message starts with <hex>, not <hex>",
        ),
        ("user_id: too short (got '')", "user_id: too short (got <str>)"),
        ("offset 42 of partition 3 at 0x7ffe", "offset <n> of partition <n> at <hex>"),
        ("first line 1\nsecond line", "first line <n>"),
    ],
)
def test_mask_hides_what_varies_per_record(message: str, masked: str) -> None:
    assert mask(message) == masked


def test_fingerprint_is_short_stable_and_depends_on_the_error_class() -> None:
    assert fingerprint("KeyError", "item 1") == fingerprint("KeyError", "item 2")
    assert fingerprint("KeyError", "item 1") != fingerprint("ValueError", "item 1")
    assert len(fingerprint("KeyError", "x")) == 10


def test_group_failures_counts_and_spans_each_group_largest_first() -> None:
    letters = [letter(n, f"item {n} unknown") for n in range(3)]
    letters.append(letter(9, "boom", error="ValueError"))

    groups = group_failures(letters)

    assert [(g.count, g.error_class) for g in groups] == [(3, "KeyError"), (1, "ValueError")]
    assert groups[0].first_seen == T0
    assert groups[0].last_seen == T0 + timedelta(minutes=2)
    assert groups[0].message == "item <n> unknown"
    assert groups[0].sample_ref == "events.click.dlq:0:0"


def test_selection_filters_combine() -> None:
    a = letter(1, "item 1 unknown")
    b = letter(2, "bad magic", error="BadMagicError", stage="decode", consumer_group="other")
    both = [a, b]

    def picked(selection: Selection) -> list[int]:
        return [x.dlq_offset for x in both if selection.matches(x)]

    assert picked(Selection()) == [1, 2]
    assert picked(Selection(stage="decode")) == [2]
    assert picked(Selection(group="clicks")) == [1]
    assert picked(Selection(error="badmagic")) == [2]
    assert picked(Selection(error="ITEM 1")) == [1]
    assert picked(Selection(event_ids=frozenset({"id-2"}))) == [2]
    assert picked(Selection(since=T0 + timedelta(minutes=2))) == [2]
    assert picked(Selection(until=T0 + timedelta(minutes=2))) == [1]
    assert picked(Selection(topics=("events.click",))) == [1, 2]
    assert picked(Selection(topics=("events.other",))) == []
    assert picked(Selection(fingerprint=fingerprint("KeyError", "item 7 unknown")[:6])) == [1]


def test_dlq_topic_names() -> None:
    assert is_dlq_topic("events.click.dlq")
    assert is_dlq_topic("orders.DLT")
    assert not is_dlq_topic("events.click")


def test_hex_dump_shows_offsets_bytes_and_ascii_and_says_what_it_cut() -> None:
    dump = hex_dump(b'{"a": 1}' + bytes(range(40)), limit=32)
    lines = dump.splitlines()
    assert lines[0].startswith("00000000  7b 22 61 22 3a 20 31 7d 00 01")
    assert lines[0].endswith('{"a": 1}........')
    assert lines[-1] == "... 16 more bytes"
    assert hex_dump(None) == "(no value: a tombstone)"


def test_decode_payload_reports_schema_errors_instead_of_raising() -> None:
    payload = decode_payload(Codec.load(), b"not avro")
    assert payload.event is None
    assert payload.error is not None
    assert payload.error.startswith("BadMagicError")
