from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from consumers.decoding import (
    MissingEventIdError,
    TombstoneError,
    UnreadableHeadersError,
    decode_records,
)


class Thing(BaseModel):
    event_id: uuid.UUID


class NoId(BaseModel):
    name: str


class BrokenError(ValueError):
    stage = "validate"


@dataclass
class Record:
    _partition: int
    _offset: int
    _value: bytes | None

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return b"k"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1700000000000)

    def headers(self) -> list[tuple[str, bytes]]:
        return [("event_id", b"id-from-header")]


class UnreadableHeaders(Record):
    """What confluent-kafka does with a header name that is not UTF-8."""

    def headers(self) -> list[tuple[str, bytes]]:
        try:
            b"\xff".decode()
        except UnicodeDecodeError as exc:
            raise SystemError("<built-in method headers> returned a result with an error") from exc
        return []


class FakeDecoder:
    def decode_batch(self, values: list[bytes]) -> Sequence[BaseModel | Exception]:
        out: list[BaseModel | Exception] = []
        for value in values:
            if value == b"bad":
                out.append(BrokenError("no good"))
            elif value == b"noid":
                out.append(NoId(name="x"))
            else:
                out.append(Thing(event_id=uuid.UUID(value.decode())))
        return out


def ids(n: int) -> bytes:
    return str(uuid.UUID(int=n)).encode()


def test_good_records_become_events_with_their_coordinates_and_bytes() -> None:
    batch = decode_records(FakeDecoder(), [Record(0, 5, ids(1)), Record(1, 7, ids(2))])
    assert not batch.rejected
    assert [(e.partition, e.offset, e.event_id.int) for e in batch.events] == [(0, 5, 1), (1, 7, 2)]
    assert batch.events[0].key == b"k"
    assert batch.events[0].value == ids(1)
    assert batch.events[0].headers == (("event_id", b"id-from-header"),)
    assert batch.events[0].timestamp_ms == 1700000000000


def test_a_failed_record_is_rejected_and_its_neighbours_still_decode() -> None:
    records = [
        Record(0, 0, ids(1)),
        Record(0, 1, b"bad"),
        Record(0, 2, ids(3)),
        Record(1, 0, ids(4)),
    ]
    batch = decode_records(FakeDecoder(), records)
    assert [(e.partition, e.offset) for e in batch.events] == [(0, 0), (0, 2), (1, 0)]
    (rejected,) = batch.rejected
    assert (rejected.topic, rejected.partition, rejected.offset) == ("t", 0, 1)
    assert rejected.stage == "validate"
    assert isinstance(rejected.error, BrokenError)
    assert (rejected.key, rejected.value) == (b"k", b"bad")
    assert rejected.event_id == "id-from-header"


def test_tombstones_and_events_without_an_id_are_rejected_as_poison() -> None:
    batch = decode_records(FakeDecoder(), [Record(0, 0, None), Record(1, 0, b"noid")])
    assert batch.events == []
    assert sorted((r.partition, r.stage) for r in batch.rejected) == [
        (0, "decode"),
        (1, "validate"),
    ]
    assert {type(r.error) for r in batch.rejected} == {TombstoneError, MissingEventIdError}


def test_a_valid_event_whose_headers_cannot_be_read_is_rejected_not_raised() -> None:
    records = [Record(0, 1, ids(1)), UnreadableHeaders(0, 2, ids(2)), Record(0, 3, ids(3))]
    batch = decode_records(FakeDecoder(), records)
    assert [e.offset for e in batch.events] == [1, 3]
    (rejected,) = batch.rejected
    assert (rejected.offset, rejected.stage, rejected.headers) == (2, "decode", ())
    assert isinstance(rejected.error, UnreadableHeadersError)
    assert rejected.value == ids(2)
    assert rejected.headers_error is not None
    assert rejected.headers_error.startswith("UnicodeDecodeError")


def test_an_undecodable_record_with_unreadable_headers_keeps_its_own_error() -> None:
    batch = decode_records(FakeDecoder(), [UnreadableHeaders(0, 4, b"bad")])
    (rejected,) = batch.rejected
    assert isinstance(rejected.error, BrokenError)
    assert rejected.headers_error is not None
