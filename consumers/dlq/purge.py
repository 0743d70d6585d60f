"""Personal data: purge dead letters, erase one key's rows, keep to a retention; all recorded.

Where an event's data is kept in PostgreSQL: the outbox row it was sent from (until the relay
published it and its retention deleted it), the outbox row of its dead letter (topic
``<source>.dlq``: key, value and headers, same lifetime), the events parked behind a dead
letter (``parked_events``, ``parked_blockers``: the key) and the delayed retries
(``consumer_retries``); the inbox keeps its coordinates (event id, topic, partition, offset).
The Kafka topics keep their records until the topic's retention or compaction: nothing here can
take one record out of a log.

Each call writes one row of ``oncepipe.erasure_ledger`` in the same transaction as the deletes:
who, when, the criteria (a key only as its SHA-256) and the rows deleted per table; never a
payload. A dry run counts and writes nothing.

``requested_by`` defaults to ``user@host`` of this process (the replay ledger's form); the
ledger also keeps the database login (``db_user``).

Public names: ``PurgeReport``, ``purge_dead_letters``, ``erase_key``, ``apply_retention``,
``key_digest``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from consumers.dlq.ledger import replayed_by

__all__ = ["PurgeReport", "apply_retention", "erase_key", "key_digest", "purge_dead_letters"]

# Outbox rows of dead-letter topics: what consumers wrote as dead letters.
_DLQ_ROW = r"topic ~ '\.(dlq|DLT)$'"


@dataclass(frozen=True)
class PurgeReport:
    """Rows deleted (or, in a dry run, that would be) per table, and the ledger row's id."""

    counts: dict[str, int] = field(default_factory=dict)
    ledger_id: int | None = None

    @property
    def total(self) -> int:
        """Rows deleted over every table."""
        return sum(self.counts.values())


def key_digest(key: bytes) -> str:
    """The SHA-256 of a key, hex: how the ledger names a key without keeping it."""
    return hashlib.sha256(key).hexdigest()


def _delete(
    conn: psycopg.Connection[Any], table: str, where: str, params: dict[str, Any], dry: bool
) -> int:
    """Delete the rows of ``oncepipe.<table>`` matching ``where``; a dry run counts them."""
    if dry:
        counted = conn.execute(
            f"SELECT count(*) FROM oncepipe.{table} WHERE {where}", params
        ).fetchone()
        return int(counted[0]) if counted else 0
    return conn.execute(f"DELETE FROM oncepipe.{table} WHERE {where}", params).rowcount


def _record(
    conn: psycopg.Connection[Any],
    action: str,
    requested_by: str | None,
    criteria: dict[str, Any],
    counts: dict[str, int],
) -> int:
    row = conn.execute(
        "INSERT INTO oncepipe.erasure_ledger (action, requested_by, criteria, counts)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (action, requested_by or replayed_by(), Jsonb(criteria), Jsonb(counts)),
    ).fetchone()
    return int(row[0]) if row else 0


def purge_dead_letters(
    conn: psycopg.Connection[Any],
    *,
    requested_by: str | None = None,
    older_than: timedelta | None = None,
    topics: tuple[str, ...] = (),
    key: bytes | None = None,
    dry_run: bool = False,
) -> PurgeReport:
    """Delete the outbox rows of dead letters matching every filter given; one ledger row.

    ``topics`` are source topics or dead-letter topics (``events.click`` covers
    ``events.click.dlq``). Unpublished dead letters go too: they are never sent.
    """
    names = [*topics, *(f"{topic}.dlq" for topic in topics), *(f"{topic}.DLT" for topic in topics)]
    where = (
        f"{_DLQ_ROW}"
        " AND (%(before)s::interval IS NULL OR created_at < now() - %(before)s::interval)"
        " AND (cardinality(%(topics)s::text[]) = 0 OR topic = ANY(%(topics)s::text[]))"
        " AND (%(key)s::bytea IS NULL OR key = %(key)s::bytea)"
    )
    params = {"before": older_than, "topics": names, "key": key}
    with conn.transaction():
        deleted = _delete(conn, "outbox", where, params, dry_run)
        counts = {"outbox_dead_letters": deleted}
        criteria: dict[str, Any] = {
            "older_than_s": older_than.total_seconds() if older_than else None,
            "topics": list(topics),
            "key_sha256": key_digest(key) if key is not None else None,
        }
        ledger = None if dry_run else _record(conn, "purge", requested_by, criteria, counts)
    return PurgeReport(counts, ledger)


_EVENT_IDS = """
SELECT dedupe_id FROM oncepipe.outbox WHERE key = %(key)s AND NOT (topic ~ '\\.(dlq|DLT)$')
UNION
SELECT convert_from(o.header_values[i], 'UTF8') FROM oncepipe.outbox o,
       generate_subscripts(o.header_names, 1) AS i
 WHERE o.key = %(key)s AND o.header_names[i] = convert_to('event_id', 'UTF8')
   AND o.header_values[i] IS NOT NULL
UNION
SELECT event_id::text FROM oncepipe.parked_events WHERE key = %(key)s
UNION
SELECT event_id::text FROM oncepipe.consumer_retries WHERE key = %(key)s
"""

# (what the report calls it, table, which rows)
_ERASE = (
    ("outbox", "outbox", f"key = %(key)s AND NOT ({_DLQ_ROW})"),
    ("outbox_dead_letters", "outbox", f"key = %(key)s AND {_DLQ_ROW}"),
    ("parked_events", "parked_events", "key = %(key)s"),
    ("parked_blockers", "parked_blockers", "key = %(key)s"),
    ("consumer_retries", "consumer_retries", "key = %(key)s"),
    ("inbox", "inbox", "event_id::text = ANY(%(ids)s::text[])"),
)


def erase_key(
    conn: psycopg.Connection[Any],
    key: bytes,
    *,
    requested_by: str | None = None,
    event_ids: tuple[str, ...] = (),
    dry_run: bool = False,
) -> PurgeReport:
    """Delete every row holding ``key``'s data, and the inbox rows of its events; one ledger row.

    The inbox holds no key: its rows are found by the event ids the deleted rows carried, plus
    ``event_ids`` (events that came from elsewhere; the caller knows them). An erased inbox row
    no longer absorbs a redelivery of its event: erase once the topics no longer hold it, or
    accept that a replay would apply it again.
    """
    with conn.transaction():
        found = conn.execute(_EVENT_IDS, {"key": key}).fetchall()
        ids = sorted({str(row[0]) for row in found} | set(event_ids))
        params = {"key": key, "ids": ids}
        counts = {
            name: _delete(conn, table, where, params, dry_run) for name, table, where in _ERASE
        }
        criteria = {"key_sha256": key_digest(key), "event_ids_given": len(event_ids)}
        ledger = None if dry_run else _record(conn, "erase", requested_by, criteria, counts)
    return PurgeReport(counts, ledger)


def apply_retention(
    conn: psycopg.Connection[Any],
    *,
    requested_by: str | None = None,
    dead_letter_days: float,
    published_days: float,
    dry_run: bool = False,
) -> PurgeReport:
    """Delete dead letters and published outbox rows past their retention (days).

    Dead letters' outbox rows go by age whether sent or not; one ledger row when anything went.
    """
    dead = f"{_DLQ_ROW} AND created_at < now() - make_interval(secs => %(dead)s)"
    published = f"NOT ({_DLQ_ROW}) AND published_at < now() - make_interval(secs => %(published)s)"
    params = {"dead": dead_letter_days * 86400, "published": published_days * 86400}
    with conn.transaction():
        counts = {
            "outbox_dead_letters": _delete(conn, "outbox", dead, params, dry_run),
            "outbox_published": _delete(conn, "outbox", published, params, dry_run),
        }
        criteria = {"dead_letter_days": dead_letter_days, "published_days": published_days}
        ledger = None
        if not dry_run and any(counts.values()):
            ledger = _record(conn, "retention", requested_by, criteria, counts)
    return PurgeReport(counts, ledger)
