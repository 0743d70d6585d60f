"""Failure fingerprints: dead letters that failed the same way share one short id.

A fingerprint is the error class plus the error message's first line with the parts that vary
per record masked: UUIDs, quoted values, hex strings and numbers. ``dlq failures`` groups by
it and ``dlq replay --fingerprint`` selects by it.

Public names: ``mask``, ``fingerprint``, ``fingerprint_of``, ``FailureGroup``, ``group_failures``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from consumers.dlq.headers import DeadLetter

__all__ = ["FailureGroup", "fingerprint", "fingerprint_of", "group_failures", "mask"]

FINGERPRINT_CHARS = 10

# Order matters: a UUID holds hex runs and digits, a hex run holds digits.
_MASKS = (
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<uuid>"),
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), "<str>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b[0-9a-fA-F]{2}(?: [0-9a-fA-F]{2})+\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)  # fmt: skip


def mask(message: str) -> str:
    """The first line of ``message`` with ids, UUIDs, quoted values, hex and numbers masked."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    for pattern, token in _MASKS:
        line = pattern.sub(token, line)
    return line


def fingerprint(error_class: str, message: str) -> str:
    """A short, stable id of (error class, masked message)."""
    digest = hashlib.sha256(f"{error_class}\n{mask(message)}".encode()).hexdigest()
    return digest[:FINGERPRINT_CHARS]


def fingerprint_of(letter: DeadLetter) -> str:
    """The fingerprint of one dead letter."""
    return fingerprint(letter.error_class, letter.error_message)


@dataclass
class FailureGroup:
    """Dead letters that failed the same way."""

    fingerprint: str
    error_class: str
    message: str
    """The masked message every member shares."""
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    source_topics: set[str] = field(default_factory=set)
    stages: set[str] = field(default_factory=set)
    sample_ref: str = ""

    def add(self, letter: DeadLetter) -> None:
        """Count ``letter`` in this group."""
        self.count += 1
        if not self.sample_ref:
            self.sample_ref = letter.ref
        seen = letter.failed_at
        if seen is not None:
            self.first_seen = min(self.first_seen or seen, letter.first_failure or seen)
            self.last_seen = max(self.last_seen or seen, seen)
        if letter.source_topic:
            self.source_topics.add(letter.source_topic)
        if letter.stage:
            self.stages.add(letter.stage)


def group_failures(letters: Iterable[DeadLetter]) -> list[FailureGroup]:
    """Group dead letters by fingerprint, the largest group first."""
    groups: dict[str, FailureGroup] = {}
    for letter in letters:
        key = fingerprint_of(letter)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(key, letter.error_class, mask(letter.error_message))
        group.add(letter)
    return sorted(groups.values(), key=lambda g: (-g.count, g.fingerprint))
