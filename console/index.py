"""The dead-letter index in PostgreSQL (``oncepipe.dlq_index``): what the pages page through.

``sync`` reads each dead-letter partition from where it stopped to its current end (the dlq
tool's reader: the same parsing and event ids as ``oncepipe dlq``) and inserts one row per dead
letter, ``BATCH`` at a time with the partition's progress in the same transaction: memory stays
bounded whatever the topic holds, and an interrupted sync resumes. Pages then filter, group and
page with SQL (keyset paging on the dead letter's coordinates), never reading a topic.

Public names: ``Filter``, ``Row``, ``Group``, ``sync``, ``groups``, ``page``, ``count``,
``indexed_per_topic``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import psycopg

from consumers.dlq import DeadLetter, DeadLetterReader, fingerprint, is_dlq_topic, mask
from oncepipe.db import connect
from oncepipe.kafka import create_admin
from oncepipe.settings import Settings

__all__ = ["Filter", "Group", "Row", "count", "groups", "indexed_per_topic", "page", "sync"]

BATCH = 5000
_LIST_TIMEOUT_S = 10


@dataclass(frozen=True)
class Filter:
    """What a page (or an action) selects; empty fields select everything."""

    topic: str = ""
    """A dead-letter topic (``*.dlq``, ``*.DLT``) or a source topic."""
    fingerprint: str = ""
    error: str = ""
    """A substring of the error class or message, case-insensitive."""
    stage: str = ""
    group: str = ""

    @classmethod
    def of(cls, values: Any) -> Filter:
        """From a mapping of form or query values (unknown keys ignored)."""
        return cls(**{f.name: str(values.get(f.name) or "").strip() for f in fields(cls)})

    def items(self) -> dict[str, str]:
        """The fields that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def where(self, error_fingerprints: list[str] | None = None) -> tuple[str, dict[str, Any]]:
        """A SQL condition on ``oncepipe.dlq_index AS i`` and its parameters.

        ``error_fingerprints``: the fingerprints whose error class or masked message match
        ``error`` (``error_matches``); the same dead letters, found through an index.
        """
        parts = ["true"]
        if self.topic:
            column = "i.dlq_topic" if is_dlq_topic(self.topic) else "i.source_topic"
            parts.append(f"{column} = %(topic)s")
        if self.fingerprint:
            parts.append("i.fingerprint LIKE %(fingerprint_prefix)s")
        if self.error and error_fingerprints is not None:
            parts.append("i.fingerprint = ANY(%(error_fingerprints)s)")
        elif self.error:
            parts.append("(i.error_class ILIKE %(error_like)s OR i.message ILIKE %(error_like)s)")
        if self.stage:
            parts.append("i.stage = %(stage)s")
        if self.group:
            parts.append("i.consumer_group = %(group)s")
        params = {
            "topic": self.topic,
            "fingerprint_prefix": _like(self.fingerprint) + "%",
            "error_like": "%" + _like(self.error) + "%",
            "stage": self.stage,
            "group": self.group,
            "error_fingerprints": error_fingerprints or [],
        }
        return " AND ".join(parts), params


def _where(conn: psycopg.Connection[Any], where: Filter) -> tuple[str, dict[str, Any]]:
    """``where.where()`` with an error text resolved to fingerprints.

    A fingerprint is a hash of the error class and masked message, so the groups kept with
    the index (a few rows) say which fingerprints an error text selects.
    """
    if not where.error:
        return where.where()
    rows = conn.execute(
        "SELECT DISTINCT fingerprint FROM oncepipe.dlq_index_groups "
        "WHERE error_class ILIKE %(e)s OR message ILIKE %(e)s",
        {"e": "%" + _like(where.error) + "%"},
    ).fetchall()
    return where.where([row[0] for row in rows])


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Row:
    """One dead letter as the index holds it, with its ledger outcome if any."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    consumer_group: str | None
    stage: str | None
    error_class: str
    message: str
    fingerprint: str
    failed_at: datetime | None
    event_id: str | None
    event_type: str | None
    outcome: str | None
    replayed_by: str | None

    @property
    def ref(self) -> str:
        """``<dlq-topic>:<partition>:<offset>``."""
        return f"{self.dlq_topic}:{self.dlq_partition}:{self.dlq_offset}"


@dataclass(frozen=True)
class Group:
    """Dead letters sharing a fingerprint."""

    fingerprint: str
    error_class: str
    message: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    source_topics: list[str]
    replayed: int


_COLUMNS = (
    "dlq_topic, dlq_partition, dlq_offset, dialect, source_topic, source_partition, "
    "source_offset, consumer_group, stage, error_class, message, fingerprint, failed_at, "
    "first_failure, event_id, event_type"
)
_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS console_batch ON COMMIT DELETE ROWS AS
SELECT {_COLUMNS} FROM oncepipe.dlq_index WITH NO DATA
"""
# Rows a second indexer already stored are passed over (ON CONFLICT), and only those inserted
# here count in their failure group.
_INSERT = f"""
WITH inserted AS (
    INSERT INTO oncepipe.dlq_index ({_COLUMNS})
    SELECT {_COLUMNS} FROM console_batch
    ON CONFLICT DO NOTHING
    RETURNING dlq_topic, fingerprint, error_class, message, source_topic, failed_at,
              first_failure
)
INSERT INTO oncepipe.dlq_index_groups AS g (dlq_topic, fingerprint, error_class, message,
    letters, first_seen, last_seen, source_topics)
SELECT dlq_topic, fingerprint, min(error_class), min(message), count(*),
       min(coalesce(first_failure, failed_at)), max(failed_at),
       coalesce(array_agg(DISTINCT source_topic) FILTER (WHERE source_topic IS NOT NULL), '{{}}')
FROM inserted GROUP BY dlq_topic, fingerprint
ON CONFLICT (dlq_topic, fingerprint) DO UPDATE SET
    letters = g.letters + excluded.letters,
    first_seen = least(g.first_seen, excluded.first_seen),
    last_seen = greatest(g.last_seen, excluded.last_seen),
    source_topics = ARRAY(SELECT DISTINCT t FROM unnest(g.source_topics || excluded.source_topics)
                          AS t ORDER BY t)
"""

_PROGRESS = """
INSERT INTO oncepipe.dlq_index_progress AS p (dlq_topic, dlq_partition, next_offset)
VALUES (%s, %s, %s)
ON CONFLICT (dlq_topic, dlq_partition) DO UPDATE
SET next_offset = greatest(p.next_offset, excluded.next_offset), indexed_at = now()
"""


@functools.lru_cache(maxsize=4096)
def _failure(error_class: str, message: str) -> tuple[str, str]:
    """(masked message, fingerprint): dead letters of one failure repeat them, compute once."""
    return mask(message), fingerprint(error_class, message)


def _row(letter: DeadLetter) -> tuple[Any, ...]:
    masked, print_ = _failure(letter.error_class, letter.error_message)
    return (
        letter.dlq_topic, letter.dlq_partition, letter.dlq_offset, letter.dialect,
        letter.source_topic, letter.source_partition, letter.source_offset,
        letter.consumer_group, letter.stage, letter.error_class, masked, print_,
        letter.failed_at, letter.first_failure, letter.event_id, letter.event_type,
    )  # fmt: skip


def _dlq_topics(settings: Settings) -> list[str]:
    listed = create_admin(settings).list_topics(timeout=_LIST_TIMEOUT_S).topics
    return sorted(t for t in listed if is_dlq_topic(t))


def sync(settings: Settings, topics: Sequence[str] | None = None) -> int:
    """Index the dead letters written since the last sync; returns how many were added.

    ``topics``: only these dead-letter topics (default: every one the broker has).
    """
    topics = _dlq_topics(settings) if topics is None else topics
    if not topics:
        return 0
    with connect(settings, "oncepipe-console-index") as conn:
        start = {
            (t, int(p)): int(o)
            for t, p, o in conn.execute(
                "SELECT dlq_topic, dlq_partition, next_offset FROM oncepipe.dlq_index_progress"
            )
        }
        conn.commit()
        letters = DeadLetterReader(settings).letters_from(topics, start)
        return _store(conn, letters)


def _store(conn: psycopg.Connection[Any], letters: Iterable[DeadLetter]) -> int:
    added = 0
    batch: list[tuple[Any, ...]] = []
    ends: dict[tuple[str, int], int] = {}

    def flush() -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(_STAGE)
            with cur.copy(f"COPY console_batch ({_COLUMNS}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row(row)
            cur.execute(_INSERT)
            cur.executemany(_PROGRESS, [(t, p, o) for (t, p), o in ends.items()])
        batch.clear()
        ends.clear()

    for letter in letters:
        batch.append(_row(letter))
        ends[letter.dlq_topic, letter.dlq_partition] = letter.dlq_offset + 1
        if len(batch) >= BATCH:
            added += len(batch)
            flush()
    if batch:
        added += len(batch)
        flush()
    conn.commit()
    return added


_ROW_COLUMNS = """i.dlq_topic, i.dlq_partition, i.dlq_offset, i.source_topic, i.source_partition,
    i.source_offset, i.consumer_group, i.stage, i.error_class, i.message, i.fingerprint,
    i.failed_at, i.event_id, i.event_type, r.outcome, r.replayed_by"""


def page(
    conn: psycopg.Connection[Any],
    where: Filter,
    *,
    after: tuple[str, int, int] | None = None,
    limit: int = 50,
) -> list[Row]:
    """Up to ``limit`` dead letters in coordinate order, those after ``after`` (keyset paging)."""
    condition, params = _where(conn, where)
    if after is not None:
        condition += " AND (i.dlq_topic, i.dlq_partition, i.dlq_offset) > (%(at)s, %(ap)s, %(ao)s)"
        params |= {"at": after[0], "ap": after[1], "ao": after[2]}
    sql = f"""
        SELECT {_ROW_COLUMNS}
        FROM oncepipe.dlq_index AS i
        LEFT JOIN oncepipe.dlq_replays AS r USING (dlq_topic, dlq_partition, dlq_offset)
        WHERE {condition}
        ORDER BY i.dlq_topic, i.dlq_partition, i.dlq_offset
        LIMIT %(limit)s
    """
    rows = conn.execute(sql, params | {"limit": limit}).fetchall()
    return [Row(*row) for row in rows]


_SUMMARY = """
SELECT fingerprint, error_class, message, letters, first_seen, last_seen, source_topics
FROM oncepipe.dlq_index_groups
WHERE (%(topic)s = '' OR dlq_topic = %(topic)s)
  AND (%(fingerprint)s = '' OR fingerprint LIKE %(fingerprint_prefix)s)
"""

_SENT = """
SELECT i.fingerprint, count(*)
FROM oncepipe.dlq_replays AS r
JOIN oncepipe.dlq_index AS i USING (dlq_topic, dlq_partition, dlq_offset)
WHERE r.outcome = 'sent' AND (%(topic)s = '' OR r.dlq_topic = %(topic)s)
GROUP BY i.fingerprint
"""


def _summary(conn: psycopg.Connection[Any], params: dict[str, Any], limit: int) -> list[Group]:
    """Groups from ``dlq_index_groups`` (a row per topic and fingerprint), merged.

    Replayed counts come from the ledger: as large as the ledger, not the topic.
    """
    sent = {f: int(n) for f, n in conn.execute(_SENT, params).fetchall()}
    merged: dict[str, Group] = {}
    for f, c, m, n, first, last, topics in conn.execute(_SUMMARY, params).fetchall():
        known = merged.get(f)
        if known is None:
            merged[f] = Group(f, c, m, int(n), first, last, sorted(topics), sent.get(f, 0))
            continue
        merged[f] = Group(
            f, c, m, known.count + int(n),
            min(filter(None, (known.first_seen, first)), default=None),
            max(filter(None, (known.last_seen, last)), default=None),
            sorted({*known.source_topics, *topics}), known.replayed,
        )  # fmt: skip
    return sorted(merged.values(), key=lambda g: (-g.count, g.fingerprint))[:limit]


def groups(conn: psycopg.Connection[Any], where: Filter, *, limit: int = 200) -> list[Group]:
    """Failure groups by fingerprint, the largest first (at most ``limit``).

    Of every dead-letter topic or one, they come from the groups kept with the index; other
    filters group the index rows they select.
    """
    condition, params = _where(conn, where)
    if _by_groups(where):
        return _summary(conn, params | {"fingerprint": where.fingerprint}, limit)
    sql = f"""
        SELECT i.fingerprint, min(i.error_class), min(i.message), count(*),
               min(coalesce(i.first_failure, i.failed_at)), max(i.failed_at),
               array_agg(DISTINCT i.source_topic) FILTER (WHERE i.source_topic IS NOT NULL),
               count(r.outcome) FILTER (WHERE r.outcome = 'sent')
        FROM oncepipe.dlq_index AS i
        LEFT JOIN oncepipe.dlq_replays AS r USING (dlq_topic, dlq_partition, dlq_offset)
        WHERE {condition}
        GROUP BY i.fingerprint
        ORDER BY count(*) DESC, i.fingerprint
        LIMIT %(limit)s
    """
    rows = conn.execute(sql, params | {"limit": limit}).fetchall()
    return [Group(f, c, m, int(n), first, last, sorted(t or []), int(s))
            for f, c, m, n, first, last, t, s in rows]  # fmt: skip


COUNT_CAP = 10_000
"""Counts of filters the failure groups cannot answer stop here (shown as ``10000+``)."""


def count(conn: psycopg.Connection[Any], where: Filter) -> tuple[int, bool]:
    """How many indexed dead letters ``where`` selects, and whether that is a lower bound.

    A dead-letter topic and/or fingerprint is counted from the failure groups; other filters
    count matching rows up to ``COUNT_CAP``, so a text filter over a million never counts them all.
    """
    if _by_groups(where):
        return sum(g.count for g in groups(conn, where, limit=1_000_000)), False
    condition, params = _where(conn, where)
    sql = f"""SELECT count(*) FROM (
        SELECT 1 FROM oncepipe.dlq_index AS i WHERE {condition} LIMIT {COUNT_CAP + 1}) AS c"""
    row = conn.execute(sql, params).fetchone()
    found = int(row[0]) if row else 0
    return min(found, COUNT_CAP), found > COUNT_CAP


def _by_groups(where: Filter) -> bool:
    """True when the failure groups kept with the index answer ``where``."""
    return not (where.error or where.stage or where.group) and (
        not where.topic or is_dlq_topic(where.topic)
    )


def indexed_per_topic(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, datetime | None]]:
    """Per dead-letter topic: the next offset indexed (summed over partitions), last sync."""
    rows = conn.execute(
        "SELECT dlq_topic, sum(next_offset), max(indexed_at) FROM oncepipe.dlq_index_progress "
        "GROUP BY dlq_topic"
    ).fetchall()
    return {t: (int(n), at) for t, n, at in rows}
