"""The transactional outbox table: ``enqueue`` for upstream code, and the relay's queries.

Upstream code calls ``enqueue(conn, event, codec=...)`` inside its own transaction, next to its
business writes: both commit or neither does. A retried request with the same idempotency key
(``event_id``) adds no second row. ``enqueue`` speaks plain DB-API (``%s`` parameters, a
cursor), so psycopg 3 and psycopg2 connections both work; other languages call the SQL function
``oncepipe.enqueue(topic, dedupe_id, key, value, header_names, header_values)`` (``bytea[]``
each) or the original ``oncepipe.enqueue(topic, dedupe_id, key, value, headers jsonb)``.

Headers are bytes end to end (``bytea[]`` names and values): a value with a NUL byte or
invalid UTF-8 and a null value leave as they came, and a null ``value`` leaves as a tombstone.

Public names: ``OutboxRow``, ``enqueue``, ``enqueue_many``, ``enqueue_record``, ``event_headers``,
``fetch_ready``, ``hold``, ``Held``, ``mark_published``, ``record_failure``,
``delete_published``, ``pending_count``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from pydantic import BaseModel

from oncepipe import tracing
from schemas import Codec, Encoded, topic_for

if TYPE_CHECKING:  # a type only: this module needs no Kafka client library itself
    from oncepipe.kafka import RawHeaders

__all__ = [
    "Held",
    "OutboxRow",
    "delete_published",
    "enqueue",
    "enqueue_many",
    "enqueue_record",
    "event_headers",
    "fetch_ready",
    "hold",
    "mark_published",
    "pending_count",
    "record_failure",
]

Headers = list[tuple[str, str]]
"""Event headers: plain strings."""


@dataclass(frozen=True)
class OutboxRow:
    """One unpublished outbox row, as the relay reads it."""

    id: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    attempts: int
    shard: int = 0


def event_headers(
    encoded: Encoded, *, produced_at: datetime | None = None, traceparent: str | None = None
) -> Headers:
    """The Kafka headers every event carries (DESIGN.md §3), as plain strings."""
    headers = [
        ("event_id", str(encoded.event_id)),
        ("event_type", encoded.event_type),
        ("schema_fingerprint", encoded.fingerprint),
        (
            "produced_at",
            _now_text() if produced_at is None else produced_at.isoformat(timespec="milliseconds"),
        ),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent))
    return headers


_clock: tuple[int, str] = (0, "")
"""The last ``produced_at`` text and its millisecond: events of one millisecond share it."""


def _now_text() -> str:
    """``datetime.now(UTC).isoformat(timespec="milliseconds")``, formatted once per millisecond."""
    global _clock  # noqa: PLW0603 - a one-entry cache; a tuple is replaced atomically
    ms = time.time_ns() // 1_000_000
    cached_ms, text = _clock
    if ms != cached_ms:
        seconds, millis = divmod(ms, 1000)
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)
        text = moment.isoformat(timespec="milliseconds")
        _clock = (ms, text)
    return text


def _as_bytes(raw: str | bytes | None) -> bytes | None:
    return raw.encode("utf-8") if isinstance(raw, str) else raw


def enqueue_record(
    conn: Any,
    topic: str,
    dedupe_id: str,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: RawHeaders,
) -> int | None:
    """Add one already-encoded record in the caller's transaction; None when it was there.

    ``value=None`` is a tombstone; header values may be str (stored as UTF-8), bytes or None.
    """
    names = [name.encode("utf-8") for name, _ in headers]
    values = [_as_bytes(raw) for _, raw in headers]
    cursor = conn.cursor()
    try:
        cursor.execute(
            "SELECT oncepipe.enqueue(%s, %s, %s::bytea, %s::bytea, %s::bytea[], %s::bytea[])",
            (topic, dedupe_id, key, value, names, values),
        )
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None or row[0] is None else int(row[0])


def enqueue(
    conn: Any,
    event: BaseModel,
    *,
    codec: Codec,
    topic: str | None = None,
    traceparent: str | None = None,
) -> bool:
    """Encode ``event`` and add it to the outbox in the caller's transaction.

    Returns False when an event with the same ``event_id`` is already queued for that topic
    (an upstream retry): nothing is added, and the caller's transaction may commit as usual.
    Without ``traceparent``, the caller's current span context (OpenTelemetry) is recorded in
    the row's ``traceparent`` and ``tracestate`` headers, if it has one.
    """
    encoded = codec.encode(event)
    headers = event_headers(encoded, traceparent=traceparent)
    if traceparent is None:
        headers += tracing.current_headers()
    row_id = enqueue_record(
        conn,
        topic or topic_for(encoded.event_type),
        str(encoded.event_id),
        key=encoded.key,
        value=encoded.value,
        headers=headers,
    )
    return row_id is not None


_MANY_ROW = "(%s, %s, %s::bytea, %s::bytea, %s::bytea[], %s::bytea[])"
# One statement for the whole batch: ON CONFLICT DO NOTHING skips a (topic, dedupe_id) already
# queued or met earlier in the same VALUES list, ids follow the list's order, and pg_notify
# per inserted row is folded by PostgreSQL into one notification per topic per transaction,
# as oncepipe.enqueue's calls are.
_MANY_SQL = (
    "INSERT INTO oncepipe.outbox (topic, dedupe_id, key, value, header_names, header_values)"
    " VALUES {rows} ON CONFLICT (topic, dedupe_id) DO NOTHING"
    " RETURNING topic, dedupe_id, pg_notify('oncepipe_outbox', topic)"
)
_MANY_CHUNK = 1000
"""Rows per statement: 6,000 parameters, well under PostgreSQL's 65,535."""


def enqueue_many(
    conn: Any,
    events: Sequence[BaseModel],
    *,
    codec: Codec,
    topic: str | None = None,
    traceparent: str | None = None,
) -> list[bool]:
    """``enqueue`` each event in the caller's transaction, in one statement per 1,000 events.

    Returns one flag per event, in order: False when an event with the same ``event_id`` was
    already queued for that topic, or appears earlier in ``events`` (the first one is added).
    Rows, headers and notifications are those ``enqueue`` writes, one call per event.
    """
    if traceparent is None:
        trace_headers = tracing.current_headers()
    else:
        trace_headers = [("traceparent", traceparent)] if traceparent else []
    wanted: list[tuple[str, str]] = []
    params: list[Any] = []
    for encoded in codec.encode_batch(events):
        headers = event_headers(encoded)
        headers += trace_headers
        row_topic = topic or topic_for(encoded.event_type)
        dedupe_id = str(encoded.event_id)
        wanted.append((row_topic, dedupe_id))
        params += (
            row_topic,
            dedupe_id,
            encoded.key,
            encoded.value,
            [name.encode() for name, _ in headers],
            [raw.encode() for _, raw in headers],
        )
    added: set[tuple[str, str]] = set()
    cursor = conn.cursor()
    try:
        for start in range(0, len(wanted), _MANY_CHUNK):
            rows = min(_MANY_CHUNK, len(wanted) - start)
            cursor.execute(
                _MANY_SQL.format(rows=", ".join([_MANY_ROW] * rows)),
                params[start * 6 : (start + rows) * 6],
            )
            added.update((str(r[0]), str(r[1])) for r in cursor.fetchall())
    finally:
        cursor.close()
    flags = []
    for pair in wanted:
        flags.append(pair in added)
        added.discard(pair)  # a repeat later in the batch was not added
    return flags


def _headers(names: list[bytes], values: list[bytes | None]) -> list[tuple[str, bytes | None]]:
    # Kafka clients take names as str only; a name that is not UTF-8 (only the SQL function
    # can store one) is sent with U+FFFD in place of its bad bytes.
    return [
        (bytes(name).decode("utf-8", "replace"), bytes(raw) if raw is not None else None)
        for name, raw in zip(names, values, strict=True)
    ]


def mark_published(conn: psycopg.Connection[Any], ids: Sequence[int]) -> int:
    """Mark rows published (after the broker acknowledged them); return how many."""
    if not ids:
        return 0
    cursor = conn.execute(
        "UPDATE oncepipe.outbox SET published_at = now(), last_error = NULL"
        " WHERE id = ANY(%s) AND published_at IS NULL",
        (list(ids),),
    )
    return cursor.rowcount


def record_failure(conn: psycopg.Connection[Any], row_id: int, error: str, *, park: bool) -> None:
    """Count a refused publish; ``park`` takes the row out of the queue for an operator."""
    conn.execute(
        "UPDATE oncepipe.outbox SET attempts = attempts + 1, last_error = %s,"
        " failed_at = CASE WHEN %s THEN now() ELSE NULL END WHERE id = %s",
        (error[:2000], park, row_id),
    )


def delete_published(conn: psycopg.Connection[Any], older_than_s: float, limit: int) -> int:
    """Delete up to ``limit`` rows published more than ``older_than_s`` seconds ago."""
    cursor = conn.execute(
        "DELETE FROM oncepipe.outbox WHERE id IN (SELECT id FROM oncepipe.outbox"
        " WHERE published_at < now() - make_interval(secs => %s) LIMIT %s)",
        (older_than_s, limit),
    )
    return cursor.rowcount


def pending_count(conn: psycopg.Connection[Any]) -> int:
    """How many rows wait to be published."""
    row = conn.execute(
        "SELECT count(*) FROM oncepipe.outbox WHERE published_at IS NULL AND failed_at IS NULL"
    ).fetchone()
    return int(row[0]) if row else 0


# -- the relay's hold on partitions it could not publish to (migration 0009) -------------------
# A row the broker did not acknowledge is held with its partition (kafka_partition) until
# not_before; while any row of a (topic, partition) is held, that partition's rows are skipped,
# so one key's rows never overtake each other and every other partition keeps flowing.

_READY_ALL = """
WITH held AS (
    SELECT DISTINCT topic, kafka_partition FROM oncepipe.outbox
    WHERE published_at IS NULL AND failed_at IS NULL AND not_before > now()
)
SELECT o.id, o.topic, o.key, o.value, o.header_names, o.header_values, o.attempts,
       o.kafka_partition, o.shard
FROM oncepipe.outbox o
WHERE o.published_at IS NULL AND o.failed_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM held h WHERE h.topic = o.topic AND h.kafka_partition = o.kafka_partition)
ORDER BY o.id LIMIT %(limit)s
"""

_READY_SHARDS = """
WITH held AS MATERIALIZED (
    SELECT DISTINCT topic, kafka_partition FROM oncepipe.outbox
    WHERE published_at IS NULL AND failed_at IS NULL AND not_before > now()
)
SELECT o.id, o.topic, o.key, o.value, o.header_names, o.header_values, o.attempts,
       o.kafka_partition, o.shard
FROM unnest(%(shards)s::smallint[]) AS s(shard)
CROSS JOIN LATERAL (
    SELECT * FROM oncepipe.outbox o
    WHERE o.shard = s.shard AND o.published_at IS NULL AND o.failed_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM held h WHERE h.topic = o.topic AND h.kafka_partition = o.kafka_partition)
    ORDER BY o.id LIMIT %(per_shard)s
) o
ORDER BY o.id
"""
# The relays' shards (migration 0013): a row's shard is a hash of its key, so one relay reads
# all of a key's rows. Each owned shard gives at most its share of the batch, in id order.
SHARDS = 16


_HELD = """
SELECT topic, kafka_partition, extract(epoch FROM max(not_before) - now())::float8
FROM oncepipe.outbox
WHERE published_at IS NULL AND failed_at IS NULL AND not_before > now()
GROUP BY topic, kafka_partition
"""

Held = dict[tuple[str, int], float]
"""(topic, partition) -> seconds until its hold ends."""


def fetch_ready(
    conn: psycopg.Connection[Any], limit: int, shards: Sequence[int] | None = None
) -> tuple[list[tuple[OutboxRow, int | None]], Held]:
    """Rows to publish and the held partitions, in one round trip.

    The rows are unpublished ones of ``shards`` (None: every shard) in id order, minus those of
    held partitions, each with the partition stored when it was held before (None for a row
    never held). With every shard, the ``limit`` oldest rows; with some, each shard gives at
    most ``ceil(limit / len(shards))`` rows (one index scan each), and a shard that gave that
    many may have more.
    """
    owned = sorted(range(SHARDS) if shards is None else set(shards))
    if not owned:
        return [], {}
    query: str = _READY_ALL
    params: dict[str, Any] = {"limit": limit}
    if len(owned) < SHARDS:
        query, params = _READY_SHARDS, {"shards": owned, "per_shard": -(-limit // len(owned))}
    with conn.pipeline():
        held_cursor = conn.execute(_HELD)
        rows_cursor = conn.execute(query, params)
    held = {(str(r[0]), int(r[1])): float(r[2]) for r in held_cursor.fetchall()}
    rows = [
        (
            OutboxRow(
                id=row[0],
                topic=row[1],
                key=bytes(row[2]) if row[2] is not None else None,
                value=bytes(row[3]) if row[3] is not None else None,
                headers=_headers(row[4], row[5]),
                attempts=row[6],
                shard=row[8],
            ),
            row[7],
        )
        for row in rows_cursor.fetchall()
    ]
    return rows, held


def hold(conn: psycopg.Connection[Any], rows: Sequence[tuple[int, int, float]]) -> int:
    """Hold rows (id, partition, seconds) on their partition for that long; return how many."""
    if not rows:
        return 0
    ids, partitions, delays = (list(column) for column in zip(*rows, strict=True))
    cursor = conn.execute(
        "UPDATE oncepipe.outbox o SET kafka_partition = h.partition,"
        " not_before = now() + make_interval(secs => h.delay)"
        " FROM unnest(%s::bigint[], %s::int[], %s::float8[]) AS h(id, partition, delay)"
        " WHERE o.id = h.id AND o.published_at IS NULL",
        (ids, partitions, delays),
    )
    return cursor.rowcount
