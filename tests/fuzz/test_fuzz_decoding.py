"""Fuzz the consumer's decoding step: every record becomes an event or a rejection, never a
crash, with its bytes untouched and in partition order."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given
from hypothesis import strategies as st

from consumers.deadletter_headers import STAGES
from consumers.decoding import decode_records
from oncepipe.errors import PoisonError
from oncepipe.kafka import RawHeaders
from schemas import Codec, SchemaError
from tests.fuzz.avro_strategies import (
    INTERESTING_LONGS,
    StoreCase,
    framed_values,
    mutations,
    store_cases,
)
from tests.fuzz.header_strategies import raw_headers
from tests.fuzz.profiles import FUZZ, TIMEOUT, fed
from tests.fuzz.test_fuzz_codec import assert_clear_refusal

pytestmark = TIMEOUT


@dataclass
class Record:
    """The part of ``confluent_kafka.Message`` the decoding step reads."""

    _offset: int
    _value: bytes | None
    _key: bytes | None
    _headers: RawHeaders | None
    _timestamp: tuple[int, int]

    def topic(self) -> str:
        return "events.click"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> RawHeaders | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp


@st.composite
def records(draw: st.DrawFn, store: StoreCase) -> list[Record]:
    out = []
    for offset in range(draw(st.integers(1, 6))):
        out.append(
            Record(
                offset,
                draw(framed_values(store)),
                draw(st.none() | st.binary(max_size=16)),
                draw(st.none() | raw_headers().map(tuple)),
                (draw(st.integers(0, 2)), draw(st.sampled_from([-1, *INTERESTING_LONGS]))),
            )
        )
    return out


MUTANTS = 16


@given(store=store_cases(), data=st.data(), seed=st.integers(0, 2**32))
@FUZZ
def test_every_record_becomes_one_event_or_one_rejection_with_its_bytes(
    store: StoreCase, data: st.DataObject, seed: int
) -> None:
    batch = data.draw(records(store))
    for record in list(batch):
        value = record.value()
        for mutant in mutations(value, seed, MUTANTS) if value is not None else ():
            batch.append(replace(record, _offset=len(batch), _value=mutant))
    decoded = decode_records(Codec.load(lookup=store.lookup()), batch)
    fed("consumers.decoding.decode_records", len(batch))
    offsets = [e.offset for e in decoded.events] + [r.offset for r in decoded.rejected]
    assert sorted(offsets) == list(range(len(batch)))
    assert [e.offset for e in decoded.events] == sorted(e.offset for e in decoded.events)
    assert [r.offset for r in decoded.rejected] == sorted(r.offset for r in decoded.rejected)
    for rejected in decoded.rejected:
        record = batch[rejected.offset]
        assert rejected.value is record.value()
        assert rejected.key is record.key()
        assert rejected.headers == tuple(record.headers() or ())
        assert rejected.stage in STAGES
        assert isinstance(rejected.error, SchemaError | PoisonError)
        assert_clear_refusal(rejected.error)
        assert rejected.event_id is None or len(rejected.event_id) <= 64
        assert rejected.timestamp_ms is None or rejected.timestamp_ms >= 0
    for event in decoded.events:
        assert event.value is batch[event.offset].value()
