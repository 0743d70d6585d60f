"""Fuzz the codec: whatever bytes arrive, decoding yields an event or a ``SchemaError``.

No other exception type, no crash of the process, no hang: a hostile value is refused with a
one-line reason, so the consumer can dead-letter it.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas import ClickEvent, Codec, SchemaError
from schemas.codec import DEFAULT_MAX_PAYLOAD_BYTES
from tests.fuzz.avro_strategies import StoreCase, framed_values, mutations, store_cases
from tests.fuzz.profiles import FUZZ, FUZZ_SIDE, TIMEOUT, fed

MAX_REASON_CHARS = 2000
MUTANTS = 16

pytestmark = TIMEOUT


def assert_clear_refusal(error: BaseException) -> None:
    """A refusal a person can act on: one non-empty line of bounded length."""
    reason = str(error)
    assert reason.strip(), f"{type(error).__name__} without a reason"
    assert "\n" not in reason, reason
    assert len(reason) <= MAX_REASON_CHARS, reason[:300]


@given(
    store=store_cases(),
    values=st.data(),
    seed=st.integers(0, 2**32),
    limit=st.sampled_from([DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_BYTES, 64, 4096]),
)
@FUZZ
def test_any_value_decodes_to_an_event_or_a_schema_error(
    store: StoreCase, values: st.DataObject, seed: int, limit: int
) -> None:
    codec = Codec.load(lookup=store.lookup(), max_payload_bytes=limit)
    drawn = values.draw(st.lists(framed_values(store), min_size=1, max_size=3))
    batch = [*drawn, *(m for v in drawn if v is not None for m in mutations(v, seed, MUTANTS))]
    results = codec.decode_batch(batch)
    fed("codec.decode_batch", len(batch))
    assert len(results) == len(batch)
    for value, result in zip(batch, results, strict=True):
        if isinstance(result, SchemaError):
            assert_clear_refusal(result)
            assert result.stage in {"decode", "validate"}
        else:
            assert isinstance(result, ClickEvent)
            assert value is not None
            assert len(value) <= limit


@given(store=store_cases(), values=st.data())
@FUZZ_SIDE
def test_a_refused_writer_schema_stays_refused_with_the_same_reason(
    store: StoreCase, values: st.DataObject
) -> None:
    codec = Codec.load(lookup=store.lookup())
    value = values.draw(framed_values(store))
    first = codec.decode_batch([value])[0]
    second = codec.decode_batch([value])[0]
    fed("codec.decode_batch (cached verdicts)", 2)
    assert type(first) is type(second)
    if isinstance(first, SchemaError):
        assert str(first) == str(second)
