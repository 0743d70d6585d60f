"""Fuzz the dead-letter readers: any headers of any of the four dialects give a ``DeadLetter``
or a ``DeadLetterFormatError`` saying which header is wrong, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.dlq.headers import (
    DIALECTS,
    DeadLetterFormatError,
    Dialect,
    format_ref,
    is_dead_letter_header,
    parse_dead_letter,
    parse_ref,
)
from tests.fuzz.avro_strategies import INTERESTING_LONGS
from tests.fuzz.header_strategies import (
    DIALECT_NAMES,
    dialect_headers,
    header_variants,
    raw_headers,
)
from tests.fuzz.profiles import FUZZ, FUZZ_SIDE, TIMEOUT, fed
from tests.fuzz.test_fuzz_codec import assert_clear_refusal

pytestmark = TIMEOUT


VARIANTS = 20


@pytest.mark.parametrize("dialect", DIALECTS)
@given(data=st.data(), seed=st.integers(0, 2**32))
@FUZZ
def test_any_dead_letter_headers_parse_or_are_refused_clearly(
    dialect: Dialect, data: st.DataObject, seed: int
) -> None:
    drawn = data.draw(dialect_headers(dialect))
    key, value = data.draw(st.tuples(st.none() | st.binary(max_size=8), st.none() | st.binary()))
    timestamp = data.draw(st.none() | st.sampled_from([-1, *INTERESTING_LONGS]))
    as_mapping = data.draw(st.booleans())
    for pairs in [drawn, *header_variants(drawn, seed, VARIANTS)]:
        fed(f"parse_dead_letter[{dialect}]")
        check_parse(
            dialect, pairs, key=key, value=value, timestamp=timestamp, as_mapping=as_mapping
        )


def check_parse(
    dialect: Dialect,
    pairs: list[tuple[str, bytes | None]],
    *,
    key: bytes | None,
    value: bytes | None,
    timestamp: int | None,
    as_mapping: bool,
) -> None:
    headers = dict(pairs) if as_mapping else pairs
    try:
        letter = parse_dead_letter(
            headers,
            key,
            value,
            dlq_topic="events.click.dlq",
            dlq_partition=1,
            dlq_offset=9,
            dlq_timestamp_ms=timestamp,
        )
    except DeadLetterFormatError as exc:
        assert_clear_refusal(exc)
        return
    present = {name for name, _ in pairs}
    if not present & {n for d, names in DIALECT_NAMES.items() if d != dialect for n in names}:
        assert letter.dialect == dialect
    assert letter.key is key
    assert letter.value is value
    assert not any(is_dead_letter_header(name) for name, _ in letter.headers)
    assert letter.ref == "events.click.dlq:1:9"
    assert letter.replay_count >= 0
    _ = letter.failed_at


@given(headers=raw_headers())
@FUZZ_SIDE
def test_headers_of_no_dialect_are_refused_clearly(headers: list[tuple[str, bytes | None]]) -> None:
    fed("parse_dead_letter[none]")
    if any(is_dead_letter_header(name) for name, _ in headers):
        return
    with pytest.raises(DeadLetterFormatError) as info:
        parse_dead_letter(headers, None, None, dlq_topic="t", dlq_partition=0, dlq_offset=0)
    assert_clear_refusal(info.value)


@given(ref=st.text(max_size=40) | st.from_regex(r"[a-z.]{1,10}:[0-9²٣]{1,4}:[0-9²]{1,4}"))
@FUZZ_SIDE
def test_any_reference_parses_or_is_refused_clearly(ref: str) -> None:
    fed("parse_ref")
    try:
        topic, partition, offset = parse_ref(ref)
    except DeadLetterFormatError as exc:
        assert_clear_refusal(exc)
        return
    assert parse_ref(format_ref(topic, partition, offset)) == (topic, partition, offset)
