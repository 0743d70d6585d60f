"""Dead-letter headers of the four dialects, as a hostile or sloppy writer could send them.

Each dialect's known names get values of every kind regardless of what the name should hold:
decimal and big-endian binary numbers, ISO times, huge and out-of-range numbers, Unicode
digits, random bytes (NUL, invalid UTF-8), empty and null values; names repeat, other
dialects' names and plain headers mix in, order is shuffled.
"""

from __future__ import annotations

import random
from datetime import UTC

from hypothesis import strategies as st

from consumers import deadletter_headers as w
from consumers.dlq import headers as h
from consumers.dlq.headers import Dialect
from tests.fuzz.avro_strategies import INTERESTING_LONGS

__all__ = ["DIALECT_NAMES", "dialect_headers", "header_values", "header_variants", "raw_headers"]

_SPRING = [
    "kafka_dlt-original-topic",
    "kafka_dlt-original-partition",
    "kafka_dlt-original-offset",
    "kafka_dlt-original-timestamp",
    "kafka_dlt-original-timestamp-type",
    "kafka_dlt-original-consumer-group",
    "kafka_dlt-exception-fqcn",
    "kafka_dlt-exception-cause-fqcn",
    "kafka_dlt-exception-message",
    "kafka_dlt-exception-stacktrace",
    "kafka_dlt-key-exception-fqcn",
    "kafka_dlt-key-exception-message",
    "kafka_dlt-key-exception-stacktrace",
]
_CONNECT = [
    f"__connect.errors.{n}"
    for n in (
        "topic",
        "partition",
        "offset",
        "connector.name",
        "task.id",
        "stage",
        "class.name",
        "exception.class.name",
        "exception.message",
        "exception.stacktrace",
    )
]
_STREAMS = [
    f"__streams.errors.{n}"
    for n in (
        "topic",
        "partition",
        "offset",
        "exception",
        "exception.class.name",
        "message",
        "exception.message",
        "stacktrace",
        "exception.stacktrace",
    )
]
DIALECT_NAMES: dict[Dialect, list[str]] = {
    "oncepipe": list(w.ONCEPIPE_HEADERS),
    "spring": _SPRING,
    "connect": _CONNECT,
    "streams": _STREAMS,
}
_PLAIN = ["event_id", "event_type", "schema_fingerprint", h.REPLAY_OF, h.REPLAY_COUNT, ""]

_numbers = st.one_of(st.integers(-5, 1000), st.sampled_from(INTERESTING_LONGS))

header_values = st.one_of(
    st.none(),
    st.just(b""),
    _numbers.map(lambda n: str(n).encode()),  # decimal
    st.builds(
        lambda n, size: (n % 2 ** (8 * size)).to_bytes(size, "big"),  # big-endian binary
        _numbers,
        st.sampled_from([4, 8]),
    ),
    st.binary(min_size=4, max_size=8),
    st.sampled_from(["²", "١٢", " 7 ", "1_000", "+3", "-0", "9" * 5000, "0x10"]).map(str.encode),
    st.datetimes(timezones=st.none() | st.just(UTC)).map(lambda d: d.isoformat().encode()),
    st.sampled_from(["decode", "VALUE_CONVERTER", "TASK_PUT", "handle"]).map(str.encode),
    st.binary(max_size=40),  # NUL bytes, invalid UTF-8
    st.text(max_size=40).map(str.encode),
)


def raw_headers(
    names: list[str] | None = None,
) -> st.SearchStrategy[list[tuple[str, bytes | None]]]:
    """Headers with names from ``names`` (plain ones and any text otherwise), names may repeat."""
    pool = st.sampled_from([*(names or []), *_PLAIN]) | st.text(max_size=20)
    return st.lists(st.tuples(pool, header_values), max_size=8)


@st.composite
def dialect_headers(draw: st.DrawFn, dialect: Dialect) -> list[tuple[str, bytes | None]]:
    """Some of ``dialect``'s headers, some repeated, mixed with others, in any order."""
    own = DIALECT_NAMES[dialect]
    chosen = draw(st.lists(st.sampled_from(own), min_size=1, max_size=len(own) + 3))
    pairs = [(name, draw(header_values)) for name in chosen]
    others = [n for d, names in DIALECT_NAMES.items() if d != dialect for n in names]
    pairs += draw(raw_headers(others if draw(st.integers(0, 4)) == 0 else None))
    return list(draw(st.permutations(pairs)))


_HOSTILE_VALUES: list[bytes | None] = [
    None,
    b"",
    b"\x00",
    b"\xff\xfe\x80",
    b"99999999999999999999",
    b"9" * 5000,
    (2**62).to_bytes(8, "big"),
    (-1).to_bytes(8, "big", signed=True),
    b"\x7f\xff\xff\xff",
    "²".encode(),
    b"9999-12-31T23:59:59.999+00:00",
    b"0001-01-01T00:00:00-01:00",
    b"not a time",
]


def header_variants(
    pairs: list[tuple[str, bytes | None]], seed: int, count: int
) -> list[list[tuple[str, bytes | None]]]:
    """``count`` cheap variants of ``pairs`` derived from ``seed``: a value swapped for a
    hostile one, a header dropped or repeated with another value, the order reversed."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        variant = list(pairs)
        how = rng.randrange(4)
        at = rng.randrange(len(variant)) if variant else 0
        if how == 0 and variant:
            variant[at] = (variant[at][0], rng.choice(_HOSTILE_VALUES))
        elif how == 1 and variant:
            del variant[at]
        elif how == 2 and variant:
            variant.insert(
                rng.randrange(len(variant) + 1), (variant[at][0], rng.choice(_HOSTILE_VALUES))
            )
        else:
            variant.reverse()
        out.append(variant)
    return out
