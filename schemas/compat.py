"""Schema compatibility: whether data written with one schema can be read with another.

fastavro resolves schemas while it reads but has no checker, so this module walks both schema
documents with the rules of Avro schema resolution (specification, "Schema Resolution"):

1. Named types (record, enum, fixed) match when their unqualified names are equal or the
   reader lists the writer's name among its aliases.
2. Records: a reader field absent from the writer (by name or the reader field's aliases) needs
   a default that fits its type; writer fields the reader lacks are skipped.
3. Enums: every writer symbol is a reader symbol, or the reader has a default symbol.
4. Fixed: sizes are equal. Arrays and maps: items and values resolve recursively.
5. Primitives: equal, or an Avro promotion (int -> long -> float -> double, string <-> bytes).
6. Unions: every branch the writer may use resolves into the reader's union (into its first
   matching branch) or into the reader's non-union schema.

Beyond the specification it also flags a logical type that is not kept: changed
(``timestamp-millis`` to ``timestamp-micros``), added or dropped, the bytes resolve but
their meaning changes.

Public names: ``check_compatibility``, ``check_history``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["check_compatibility", "check_history"]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_KINDS = _PRIMITIVES | _NAMED | {"array", "map"}
_MISSING: Any = object()


@dataclass(eq=False)
class _Field:
    name: str
    type: _Node
    aliases: frozenset[str]
    default: Any


@dataclass(eq=False)
class _Node:
    kind: str
    logical: str | None = None
    name: str = ""
    aliases: frozenset[str] = frozenset()
    fields: list[_Field] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    default: Any = _MISSING
    size: int | None = None
    items: _Node | None = None
    branches: list[_Node] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How a problem message names this type."""
        return _short(self.name) if self.name else self.kind


def check_compatibility(writer: str | Any, reader: str | Any) -> list[str]:
    """Problems reading data written with ``writer`` using ``reader``; empty when compatible.

    Each schema is JSON text, or an already decoded JSON document (dict, list).
    """
    w, r = _Parser().node(_document(writer), ""), _Parser().node(_document(reader), "")
    checker = _Checker()
    checker.check(w, r, r.label)
    return checker.problems


def check_history(versions: Sequence[str | Any]) -> list[str]:
    """Problems for every (older, newer) pair of ``versions`` (oldest first), labelled vN."""
    problems = []
    for new in range(1, len(versions)):
        for old in range(new):
            found = check_compatibility(versions[old], versions[new])
            problems += [f"v{old + 1} -> v{new + 1}: {p}" for p in found]
    return problems


def _document(schema: str | Any) -> Any:
    if not isinstance(schema, str):
        return schema
    try:
        return json.loads(schema)
    except ValueError:
        if schema in _PRIMITIVES:  # a bare primitive name is a schema too
            return schema
        raise


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Parser:
    """Turns a schema document into linked nodes; named types are shared, so cycles close."""

    def __init__(self) -> None:
        self.named: dict[str, _Node] = {}

    def node(self, doc: Any, namespace: str) -> _Node:
        if isinstance(doc, list):
            return _Node("union", branches=[self.node(branch, namespace) for branch in doc])
        if isinstance(doc, str):
            return _Node(doc) if doc in _PRIMITIVES else self._reference(doc, namespace)
        if not isinstance(doc, dict) or "type" not in doc:
            raise ValueError(f"not an Avro schema: {doc!r}")
        kind = doc["type"]
        if not isinstance(kind, str) or kind not in _KINDS:
            return self.node(kind, namespace)  # {"type": {...}} or {"type": "SomeNamedType"}
        if kind in _NAMED:
            return self._named(doc, "record" if kind == "error" else kind, namespace)
        node = _Node(kind, logical=doc.get("logicalType"))
        if kind in {"array", "map"}:
            node.items = self.node(doc["items" if kind == "array" else "values"], namespace)
        return node

    def _reference(self, name: str, namespace: str) -> _Node:
        for candidate in (_full(name, namespace), name):
            if candidate in self.named:
                return self.named[candidate]
        raise ValueError(f"unknown type name {name!r}")

    def _named(self, doc: dict[str, Any], kind: str, namespace: str) -> _Node:
        name = _full(doc["name"], doc.get("namespace", namespace))
        inner = name.rpartition(".")[0]
        node = _Node(kind, logical=doc.get("logicalType"), name=name)
        node.aliases = frozenset(_full(alias, inner) for alias in doc.get("aliases", ()))
        self.named[name] = node  # before the fields: a record may refer to itself
        if kind == "enum":
            node.symbols = list(doc["symbols"])
            node.default = doc.get("default", _MISSING)
        elif kind == "fixed":
            node.size = int(doc["size"])
        else:
            node.fields = [
                _Field(
                    name=f["name"],
                    type=self.node(f["type"], inner),
                    aliases=frozenset(f.get("aliases", ())),
                    default=f.get("default", _MISSING),
                )
                for f in doc["fields"]
            ]
        return node


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self._records_in_progress: set[tuple[int, int]] = set()

    def check(self, w: _Node, r: _Node, path: str) -> None:
        if r.kind == "union":
            for branch in w.branches if w.kind == "union" else [w]:
                self._into_union(branch, r, path)
            return
        if w.kind == "union":
            for branch in w.branches:
                self.check(branch, r, path)
            return
        if not _same_shape(w, r) and not _promotes(w, r):
            self.problems.append(
                f"{path}: type changed from {w.label} to {r.label}; Avro only promotes "
                "int -> long -> float -> double and string <-> bytes"
            )
            return
        if w.logical != r.logical:
            # Added or dropped counts too: the bytes resolve but their meaning changes.
            self.problems.append(
                f"{path}: logical type changed from {w.logical or 'none'} to "
                f"{r.logical or 'none'}; the bytes resolve but their meaning changes"
            )
        if w.kind in _NAMED and not _names_match(w, r):
            self.problems.append(
                f"{path}: {w.kind} {w.name} is read as {r.name}; give the reader the alias "
                f"{w.name!r} or keep the name"
            )
            return
        if w.kind == "record":
            self._record(w, r, path)
        elif w.kind == "enum":
            self._enum(w, r, path)
        elif w.kind == "fixed" and w.size != r.size:
            self.problems.append(f"{path}: fixed size changed from {w.size} to {r.size}")
        elif w.kind in {"array", "map"} and w.items is not None and r.items is not None:
            self.check(w.items, r.items, f"{path}[]" if w.kind == "array" else f"{path}{{}}")

    def _into_union(self, w: _Node, r: _Node, path: str) -> None:
        target = next((b for b in r.branches if _same_shape(w, b) and _names_match(w, b)), None)
        target = target or next((b for b in r.branches if _promotes(w, b)), None)
        if target is None:
            choices = ", ".join(b.label for b in r.branches)
            self.problems.append(
                f"{path}: the writer's {w.label} has no branch in the reader's union "
                f"[{choices}]; add it to the union"
            )
            return
        self.check(w, target, path)

    def _record(self, w: _Node, r: _Node, path: str) -> None:
        key = (id(w), id(r))
        if key in self._records_in_progress:  # a recursive type: already being checked
            return
        self._records_in_progress.add(key)
        by_name = {f.name: f for f in w.fields}
        for reader_field in r.fields:
            names = [reader_field.name, *sorted(reader_field.aliases)]
            found = next((by_name[n] for n in names if n in by_name), None)
            where = f"{path}.{reader_field.name}"
            if found is not None:
                self.check(found.type, reader_field.type, where)
            elif reader_field.default is _MISSING:
                self.problems.append(
                    f"{where}: field added without a default; data written with the older "
                    "schema has no value for it: give it a default"
                )
            elif not _fits(reader_field.type, reader_field.default):
                self.problems.append(
                    f"{where}: default {reader_field.default!r} is not a valid "
                    f"{reader_field.type.label} (a union's default must fit its first branch)"
                )
        self._records_in_progress.discard(key)

    def _enum(self, w: _Node, r: _Node, path: str) -> None:
        missing = [s for s in w.symbols if s not in r.symbols]
        if r.default is not _MISSING and r.default not in r.symbols:
            self.problems.append(f"{path}: enum default {r.default!r} is not one of its symbols")
        elif missing and r.default is _MISSING:
            self.problems.append(
                f"{path}: enum symbol(s) {', '.join(missing)} removed and the reader's enum has "
                "no default; keep the symbols or give the enum a default"
            )


def _same_shape(w: _Node, r: _Node) -> bool:
    return w.kind == r.kind and w.kind != "union"


def _promotes(w: _Node, r: _Node) -> bool:
    return r.kind in _PROMOTIONS.get(w.kind, frozenset())


def _names_match(w: _Node, r: _Node) -> bool:
    if w.kind not in _NAMED:
        return True
    return _short(w.name) == _short(r.name) or _short(w.name) in {_short(a) for a in r.aliases}


def _fits(node: _Node, value: Any) -> bool:  # noqa: PLR0911 - one return per Avro type
    """Whether a JSON default value is valid for ``node`` (the specification's encoding)."""
    kind = node.kind
    if kind == "union":
        return bool(node.branches) and _fits(node.branches[0], value)
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in {"int", "long"}:
        bits = 31 if kind == "int" else 63
        return type(value) is int and -(2**bits) <= value < 2**bits
    if kind in {"float", "double"}:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in {"string", "bytes"}:
        return isinstance(value, str)
    if kind == "enum":
        return value in node.symbols
    if kind == "fixed":
        return isinstance(value, str) and len(value) == node.size
    if kind == "array" and node.items is not None:
        return isinstance(value, list) and all(_fits(node.items, v) for v in value)
    if kind == "map" and node.items is not None:
        return isinstance(value, dict) and all(_fits(node.items, v) for v in value.values())
    return isinstance(value, dict) and all(
        _fits(f.type, value[f.name]) if f.name in value else f.default is not _MISSING
        for f in node.fields
    )
