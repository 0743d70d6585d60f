"""Structure-aware inputs for the decoder: single-object framing around ClickEvent-shaped bodies.

A value is built the way a producer would write it (magic, fingerprint, one Avro field after
another), but every piece can be hostile: lengths that lie, varints of 2**62 or longer than
64 bits, union and enum indexes out of range, map blocks whose counts do not match their
entries, invalid UTF-8, deep nesting; then the whole may be cut, spliced or padded. Writer
schemas come from a fake schema store holding compatible, incompatible and hostile versions
(recursive types, arrays of zero-byte items) and corrupt rows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from schemas.avro_io import MAGIC, fingerprint
from schemas.catalog import shipped_catalog
from schemas.codec import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = [
    "INTERESTING_LONGS",
    "StoreCase",
    "click_bodies",
    "framed_values",
    "mutations",
    "store_cases",
    "varint",
    "zigzag",
]

SHIPPED = [version.schema for version in shipped_catalog()]
NEWEST_DOC: dict[str, Any] = json.loads(SHIPPED[-1].text)

INTERESTING_LONGS = [
    0,
    1,
    -1,
    2**31 - 1,
    -(2**31),
    2**62,
    2**63 - 1,
    -(2**63),
    253_402_300_800_000,  # the first millisecond after year 9999
    -62_135_596_800_001,  # the last millisecond before year 1
]


def varint(unsigned: int) -> bytes:
    """The base-128 varint of a non-negative integer, however many bits it has."""
    out = bytearray()
    while unsigned > 0x7F:
        out.append((unsigned & 0x7F) | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


def zigzag(n: int) -> bytes:
    """Avro's zigzag long; integers outside 64 bits give the over-long varints a hostile writer
    could send."""
    return varint((n << 1) ^ (n >> 63)) if -(2**63) <= n < 2**63 else varint(abs(n) << 1)


longs = st.one_of(
    st.integers(-3, 40),
    st.sampled_from(INTERESTING_LONGS),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**63, 2**80),  # longer than any long: 10+ varint bytes
)


_texts = st.one_of(
    st.text(max_size=30).map(str.encode),
    st.binary(max_size=30),  # invalid UTF-8, NUL bytes
    st.uuids().map(lambda u: str(u).encode()),
)


@st.composite
def avro_strings(
    draw: st.DrawFn, content: st.SearchStrategy[bytes] | None = None, *, honest: bool = False
) -> bytes:
    """A length-prefixed string whose length is right when ``honest``, else sometimes lies."""
    data = draw(content if content is not None else _texts)
    length = len(data) if honest or draw(st.integers(0, 3)) else draw(longs)
    return zigzag(length) + data


_words = st.text(min_size=1, max_size=12).map(str.encode)
# near the 1 MiB limit on either side, cheaply
_padding = st.sampled_from([1_048_400, 1_048_550, DEFAULT_MAX_PAYLOAD_BYTES]).map(
    lambda n: b"u" * n
)
identifiers = st.one_of(st.text(max_size=30).map(str.encode), st.binary(max_size=30), _padding)


@st.composite
def map_blocks(draw: st.DrawFn) -> bytes:
    """A map's blocks: counts that match their entries or lie, the negative-count form with a
    byte size, and the closing zero (or none)."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 3))):
        entries = draw(st.lists(st.tuples(avro_strings(), avro_strings()), max_size=4))
        body = b"".join(k + v for k, v in entries)
        form = draw(st.sampled_from(["count", "sized", "lying"]))
        if form == "count":
            out += zigzag(len(entries))
        elif form == "sized":
            out += zigzag(-len(entries)) + zigzag(draw(st.one_of(st.just(len(body)), longs)))
        else:
            out += zigzag(draw(longs))
        out += body
    if draw(st.booleans()):
        out += zigzag(0)
    return bytes(out)


@st.composite
def click_bodies(draw: st.DrawFn, *, with_surface: bool = True, honest: bool = False) -> bytes:
    """The fields of a ClickEvent (v1, or v2 with ``surface``): well formed when ``honest``
    (the values may still fail validation), else each possibly hostile."""
    if honest:
        return _honest_click(draw, with_surface=with_surface)
    chunks = [
        draw(avro_strings()),  # event_id
        draw(avro_strings(identifiers)),  # user_id
        draw(avro_strings()),  # item_id
        zigzag(draw(st.one_of(st.integers(-1, 5), longs))),  # action (4 symbols)
        zigzag(draw(longs)),  # occurred_at, milliseconds
        draw(avro_strings()),  # session_id
    ]
    branch = draw(st.one_of(st.sampled_from([0, 1, 1]), longs))  # context: [null, map]
    chunks.append(zigzag(branch) + (draw(map_blocks()) if branch == 1 else b""))
    if with_surface:
        chunks.append(draw(avro_strings()))
    return b"".join(chunks)


def _rarely(draw: st.DrawFn) -> bool:
    """True about one time in ten."""
    return draw(st.integers(0, 9)) == 0


def _honest_click(draw: st.DrawFn, *, with_surface: bool) -> bytes:
    chunks = [
        draw(avro_strings(st.uuids().map(lambda u: str(u).encode()), honest=True)),
        draw(avro_strings(_padding if _rarely(draw) else _words, honest=True)),
        draw(avro_strings(_words, honest=True)),
        zigzag(draw(st.integers(0, 3))),
        zigzag(draw(st.integers(0, 4_102_444_800_000))),
        draw(avro_strings(_words, honest=True)),
        zigzag(0),
    ]
    if with_surface:
        chunks.append(draw(avro_strings(_words, honest=True)))
    return b"".join(chunks)


# -- the schema store ---------------------------------------------------------------------------

_PRIMITIVE_TYPES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
_SELF = "__self__"


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        children.map(lambda t: {"type": "array", "items": t}),
        children.map(lambda t: {"type": "map", "values": t}),
        st.lists(children, min_size=1, max_size=3, unique_by=json.dumps),  # a union
        st.lists(children, max_size=3).map(
            lambda ts: {
                "type": "record",
                "name": "?",
                "fields": [{"name": f"f{i}", "type": t} for i, t in enumerate(ts)],
            }
        ),
    )


avro_types = st.recursive(
    st.one_of(
        st.sampled_from(_PRIMITIVE_TYPES),
        st.integers(0, 4).map(lambda n: {"type": "fixed", "name": "?", "size": n}),
        st.just({"type": "enum", "name": "?", "symbols": ["A", "B"]}),
        # a linked list: legal Avro, and a way to nest without bound
        st.just(
            {
                "type": "record",
                "name": "?",
                "fields": [
                    {"name": "v", "type": "int"},
                    {"name": "next", "type": ["null", _SELF]},
                ],
            }
        ),
    ),
    _extend,
    max_leaves=6,
)


# The shapes that let a body demand unbounded work (see schemas.shape), offered directly so
# the fuzzer meets them often instead of once in a long while.
hostile_types = st.sampled_from(
    [
        {"type": "array", "items": "null"},
        {"type": "array", "items": {"type": "fixed", "name": "?", "size": 0}},
        {"type": "array", "items": {"type": "record", "name": "?", "fields": []}},
        {
            "type": "record",
            "name": "?",
            "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", _SELF]}],
        },
    ]
)


def _name_types(node: Any, counter: list[int]) -> Any:
    """Give every named type a unique name; ``__self__`` names its enclosing record."""
    if isinstance(node, list):
        return [_name_types(item, counter) for item in node]
    if not isinstance(node, dict):
        return node
    copy = dict(node)
    if copy.get("name") == "?":
        counter[0] += 1
        copy["name"] = f"T{counter[0]}"
    if "fields" in copy:
        copy["fields"] = [
            {**f, "type": _self_to(_name_types(f["type"], counter), copy["name"])}
            for f in copy["fields"]
        ]
    for key in ("items", "values"):
        if key in copy:
            copy[key] = _name_types(copy[key], counter)
    return copy


def _self_to(node: Any, name: str) -> Any:
    if node == _SELF:
        return name
    if isinstance(node, list):
        return [_self_to(item, name) for item in node]
    return node


@dataclass
class StoreCase:
    """A fake schema store (fingerprint -> schema text) and the fingerprints worth sending."""

    rows: dict[str, str] = field(default_factory=dict)
    fingerprints: list[bytes] = field(default_factory=list)
    written: list[bytes] = field(default_factory=list)
    """The fingerprints of well-formed rows (sent more often: their bodies get further)."""

    def lookup(self) -> Callable[[str], str | None]:
        """The ``lookup`` the codec calls with a hex fingerprint."""
        return self.rows.get


def _variant(doc: dict[str, Any], extras: list[Any], change: str) -> dict[str, Any]:
    fields = [dict(f) for f in doc["fields"]]
    if change == "drop-surface":
        fields = [f for f in fields if f["name"] != "surface"]
    elif change == "drop-user":
        fields = [f for f in fields if f["name"] != "user_id"]
    elif change == "user-as-int":
        fields = [{**f, "type": "int"} if f["name"] == "user_id" else f for f in fields]
    counter = [0]
    fields += [{"name": f"x{i}", "type": _name_types(t, counter)} for i, t in enumerate(extras)]
    name = "OrderEvent" if change == "other-type" else doc["name"]
    return {**doc, "name": name, "fields": fields}


@st.composite
def store_cases(draw: st.DrawFn) -> StoreCase:
    """A store with a few writer versions, a corrupt row or two, and an unknown fingerprint."""
    case = StoreCase()
    for _ in range(draw(st.integers(0, 3))):
        extras = draw(st.lists(st.one_of(hostile_types, avro_types), min_size=1, max_size=3))
        change = draw(
            st.sampled_from(
                ["none", "none", "drop-surface", "drop-user", "user-as-int", "other-type"]
            )
        )
        text = json.dumps(_variant(NEWEST_DOC, extras, change))
        try:
            hex_fp = fingerprint(text)
        except ValueError:
            continue  # not a schema a producer could register (a bad union, say)
        case.rows[hex_fp] = text
        case.written.append(bytes.fromhex(hex_fp))
    corrupt = draw(st.sampled_from(["none", "garbage", "other-schema"]))
    if corrupt != "none":
        key = draw(st.binary(min_size=8, max_size=8))
        case.rows[key.hex()] = "{not json" if corrupt == "garbage" else SHIPPED[0].text
        case.fingerprints.append(key)
    case.fingerprints += [s.header[2:] for s in SHIPPED]
    case.fingerprints.append(draw(st.binary(min_size=8, max_size=8)))  # known nowhere
    return case


# -- whole values ------------------------------------------------------------------------------

tokens = st.one_of(
    # a block count of 2**62, or a union branch 1 (or an int 1) repeated deep enough to
    # overflow a C stack: what the hostile shapes of newer writers are open to
    st.sampled_from([zigzag(2**62), zigzag(2**40), b"\x02" * 200_000]),
    longs.map(zigzag),
    avro_strings(),
    st.sampled_from([0, 1, 50]).map(lambda n: b"\x02" * n),
)


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` unchanged, cut, spliced with junk, a byte flipped, or bytes appended."""
    how = draw(
        st.sampled_from(["keep", "keep", "keep", "cut", "splice", "flip", "append", "ff-run"])
    )
    if how == "keep" or not data:
        return data
    # past the magic mostly: hypothesis favours small integers, which would hit it too often
    start = 0 if len(data) <= 2 or _rarely(draw) else 2
    at = draw(st.integers(start, len(data) - 1))
    if how == "cut":
        return data[:at]
    if how == "splice":
        return data[:at] + draw(st.binary(min_size=1, max_size=12)) + data[at:]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "ff-run":  # an unterminated or over-long varint
        return data[:at] + b"\xff" * draw(st.integers(1, 20)) + data[at + 1 :]
    return data + draw(st.binary(min_size=1, max_size=12))


@st.composite
def framed_values(draw: st.DrawFn, store: StoreCase) -> bytes | None:
    """One record value: usually framed single-object Avro, sometimes anything at all."""
    if _rarely(draw):
        return draw(st.none() | st.binary(max_size=64))
    magic = draw(st.sampled_from([b"\x00", b"{", b"\xc3", b"\xc3\x00"])) if _rarely(draw) else MAGIC
    key = draw(st.sampled_from(store.fingerprints + store.written * 3))
    honest = draw(st.sampled_from([True, True, False]))
    with_surface = draw(st.sampled_from([True, True, False]))
    body = draw(click_bodies(with_surface=with_surface, honest=honest))
    if key in store.written or _rarely(draw):  # the fields newer writers add
        body += b"".join(draw(st.lists(tokens, min_size=1, max_size=4)))
    return draw(damaged(magic + key + body))


def mutations(value: bytes, seed: int, count: int) -> list[bytes]:
    """``count`` cheap byte-level variants of ``value`` (cuts, flips, ff-runs, duplicated
    spans), derived from ``seed``: many inputs per generated example at little cost."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if not value:
            out.append(bytes([rng.randrange(256)]))
            continue
        at = rng.randrange(len(value))
        how = rng.randrange(4)
        if how == 0:
            out.append(value[:at])
        elif how == 1:
            out.append(value[:at] + bytes([value[at] ^ (1 << rng.randrange(8))]) + value[at + 1 :])
        elif how == 2:
            out.append(value[:at] + b"\xff" * rng.randrange(1, 12) + value[at:])
        else:
            end = min(len(value), at + rng.randrange(1, 16))
            out.append(value[:end] + value[at:])
    return out
