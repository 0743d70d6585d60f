from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from consumers.decoding import decode_records


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


def test_good_records_become_events_with_their_coordinates() -> None:
    batch = decode_records(FakeDecoder(), [Record(0, 5, ids(1)), Record(1, 7, ids(2))])
    assert not batch.poison
    assert [(e.partition, e.offset, e.event_id.int) for e in batch.events] == [(0, 5, 1), (1, 7, 2)]
    assert batch.events[0].key == b"k"
    assert batch.events[0].timestamp_ms == 1700000000000


def test_a_poison_record_stops_its_partition_only() -> None:
    records = [
        Record(0, 0, ids(1)),
        Record(0, 1, b"bad"),
        Record(0, 2, ids(3)),
        Record(1, 0, ids(4)),
    ]
    batch = decode_records(FakeDecoder(), records)
    assert [(e.partition, e.offset) for e in batch.events] == [(0, 0), (1, 0)]
    (poison,) = batch.poison
    assert (poison.topic, poison.partition, poison.offset, poison.stage) == ("t", 0, 1, "validate")
    assert "t[0]@1" in poison.describe()


def test_tombstones_and_events_without_an_id_are_poison_too() -> None:
    batch = decode_records(FakeDecoder(), [Record(0, 0, None), Record(1, 0, b"noid")])
    assert batch.events == []
    assert sorted((p.partition, p.stage) for p in batch.poison) == [(0, "decode"), (1, "validate")]
