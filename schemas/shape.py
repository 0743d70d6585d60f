"""Schema shapes a hostile body can turn into unbounded work for the decoder.

Two shapes let a few bytes of body cost without bound, whatever the size limit:

- a **recursive** type (a record reaching itself): every nesting level costs one byte, and
  fastavro's compiled reader recurses once per level, so about 100 KB of body overflows the C
  stack and kills the process (SIGSEGV) instead of raising;
- an **array of zero-byte items** (``null``, ``fixed`` of size 0, records of only such fields):
  its block count is a varint, so ten bytes ask for 2**62 items, read or skipped one by one.

Both are refused before a writer schema is used. Works on fastavro's parsed form (named types
fully qualified, defined once and then referenced by name).

Public names: ``unbounded_shapes``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["unbounded_shapes"]

# Smallest encoding of each primitive; every other primitive takes at least one byte.
_ZERO_WIDTH_PRIMITIVES = frozenset({"null"})
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def unbounded_shapes(parsed: Any) -> list[str]:
    """What in a parsed schema lets a body demand unbounded work; empty when nothing does."""
    walker = _Walker(parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {})
    walker.width(parsed, ())
    return walker.problems


class _Walker:
    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.widths: dict[str, int] = {}
        self.problems: list[str] = []

    def width(self, node: Any, enclosing: tuple[str, ...]) -> int:
        """The fewest bytes ``node`` can encode in; records problems on the way."""
        if isinstance(node, str):
            return self._reference(node, enclosing)
        if isinstance(node, list):  # a union: the branch index takes a byte
            for branch in node:
                self.width(branch, enclosing)
            return 1
        kind = node.get("type") if isinstance(node, dict) else None
        if kind in {"record", "error"}:
            return self._record(node, enclosing)
        if kind in {"array", "map", "fixed", "enum"}:
            return self._sized(node, kind, enclosing)
        # a primitive written as {"type": "long", "logicalType": ...}, or a nested type
        return 1 if kind is None else self.width(kind, enclosing)

    def _sized(self, node: dict[str, Any], kind: str, enclosing: tuple[str, ...]) -> int:
        if kind == "fixed":
            return int(node.get("size", 0))
        if kind == "array" and self.width(node.get("items"), enclosing) == 0:
            self.problems.append(
                f"an array of {_describe(node.get('items'))} items, which take no bytes, "
                "so a ten-byte block count asks for 2**62 of them"
            )
        elif kind == "map":  # every entry has a string key: at least one byte
            self.width(node.get("values"), enclosing)
        return 1  # a block count or an enum index

    def _reference(self, name: str, enclosing: tuple[str, ...]) -> int:
        if name in _PRIMITIVES:
            return 0 if name in _ZERO_WIDTH_PRIMITIVES else 1
        if name in enclosing:
            self.problems.append(
                f"the recursive type {name}, which a body can nest deep enough to overflow "
                "the decoder's stack"
            )
            return 1
        if name in self.widths:
            return self.widths[name]
        definition = self.named.get(name)
        return 1 if definition is None else self.width(definition, enclosing)

    def _record(self, node: dict[str, Any], enclosing: tuple[str, ...]) -> int:
        name = str(node.get("name", ""))
        inner = (*enclosing, name)
        total = sum(self.width(f.get("type"), inner) for f in node.get("fields", ()))
        self.widths[name] = total
        return total


def _describe(node: Any) -> str:
    if isinstance(node, dict):
        return str(node.get("name") or node.get("type"))
    return str(node)
