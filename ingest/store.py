"""The one transaction of an accepted request: outbox rows and the idempotency record.

Per (client, Idempotency-Key) a transaction-level advisory lock marks the request in flight:
a concurrent retry that cannot take it gets 409 at once instead of waiting. The holder then
looks for the stored record (a committed earlier request): same request hash -> its stored
response is replayed; another hash -> refused. Otherwise it enqueues the events (producers'
``enqueue``) and inserts the record; both commit or neither. PostgreSQL makes a commit visible
before it releases the transaction's locks, so whoever takes the lock next sees the record.

Event ids derive from (client, key, index in the batch): a retry whose record expired still
produces the same ids, which the outbox (``dedupe_id``) and the consumers' inbox absorb.

Public names: ``Accepted``, ``Replayed``, ``InFlight``, ``KeyReused``, ``Outcome``,
``derive_event_id``, ``request_hash``, ``accept``, ``enqueue_only`` (the naive endpoint's
writes, for comparisons), ``delete_expired``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from producers import enqueue
from schemas import Codec, Event

__all__ = [
    "Accepted",
    "InFlight",
    "KeyReused",
    "Outcome",
    "Replayed",
    "accept",
    "delete_expired",
    "derive_event_id",
    "enqueue_only",
    "request_hash",
]

# uuid5 namespace of ingested event ids (a fixed random UUID: changing it changes every id).
EVENT_ID_NAMESPACE = uuid.UUID("6f1c3a0e-94a7-4d55-9d0e-1b0c9a3e2d71")
# First half of the two-key advisory lock, so ingest locks never meet other oncepipe locks.
LOCK_CLASS = 0x696E67  # "ing"


def derive_event_id(client: str, key: str, index: int) -> uuid.UUID:
    """The event id of the ``index``-th event of ``client``'s request with ``key``."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{client}\n{key}\n{index}")


def request_hash(event_type: str, batch: bool, body: Any) -> bytes:
    """What makes two requests the same: endpoint and the parsed body, canonically encoded.

    Raises ``UnicodeEncodeError`` for text that is not valid Unicode (a lone surrogate).
    """
    # UTF-8 without escapes: a lone surrogate ("\ud800" in the JSON) raises UnicodeEncodeError
    # here, before it could fail the Avro encoding inside the transaction.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    kind = "batch" if batch else "one"
    return hashlib.sha256(f"{event_type}\n{kind}\n{canonical}".encode()).digest()


@dataclass(frozen=True, slots=True)
class Accepted:
    """Stored and committed now: the response to send (and replay later)."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Replayed:
    """The key was used before with the same request: its stored response."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class InFlight:
    """Another request with the key is being processed right now."""


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The key was used before with a different request."""


Outcome = Accepted | Replayed | InFlight | KeyReused

_LOCK = "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))"
_FIND = (
    "SELECT request_hash, status_code, response,"
    " created_at > now() - make_interval(secs => %s)"
    " FROM oncepipe.ingest_requests WHERE client = %s AND idempotency_key = %s"
)
_FORGET = "DELETE FROM oncepipe.ingest_requests WHERE client = %s AND idempotency_key = %s"
_STORE = (
    "INSERT INTO oncepipe.ingest_requests"
    " (client, idempotency_key, request_hash, status_code, response) VALUES (%s, %s, %s, %s, %s)"
)


def accept(
    pool: ConnectionPool[psycopg.Connection[Any]],
    *,
    codec: Codec,
    client: str,
    key: str,
    digest: bytes,
    build: Callable[[], Sequence[Event]],
    respond: Callable[[Sequence[Event]], bytes],
    key_ttl_s: float,
    timeout_s: float,
    topic: str | None = None,
) -> Outcome:
    """Run the request's transaction; ``build`` makes the events once the key is free.

    ``timeout_s`` bounds the wait for a connection and each statement; past it psycopg raises
    (``PoolTimeout``, ``QueryCanceled``) and nothing is committed.
    """
    with pool.connection(timeout=timeout_s) as conn, conn.transaction():
        # Pipelined, one round trip: the lookup runs after the lock statement in the same
        # session, with a snapshot taken after the lock was granted.
        with conn.pipeline():
            conn.execute(_timeout(timeout_s))
            lock = conn.execute(_LOCK, (LOCK_CLASS, f"{client}\n{key}"))
            find = conn.execute(_FIND, (key_ttl_s, client, key))
            locked, found = lock.fetchone(), find.fetchone()
        if not locked or not locked[0]:
            return InFlight()
        if found is not None:
            stored_hash, status, response, live = found
            if live:
                if bytes(stored_hash) != digest:
                    return KeyReused()
                return Replayed(int(status), bytes(response))
            conn.execute(_FORGET, (client, key))  # expired: this request starts afresh
        events = build()
        body = respond(events)
        with conn.pipeline():  # the record travels with the first row
            conn.execute(_STORE, (client, key, digest, 202, body))
            for event in events:
                enqueue(conn, event, codec=codec, topic=topic)  # False: queued (expired key)
        return Accepted(202, body)


def _timeout(seconds: float) -> str:
    return f"SET LOCAL statement_timeout = {int(seconds * 1000)}"


def enqueue_only(
    pool: ConnectionPool[psycopg.Connection[Any]],
    *,
    codec: Codec,
    events: Sequence[Event],
    timeout_s: float,
    topic: str | None = None,
) -> None:
    """The naive endpoint's transaction: the outbox rows alone, no idempotency record."""
    with pool.connection(timeout=timeout_s) as conn, conn.transaction(), conn.pipeline():
        conn.execute(_timeout(timeout_s))
        for event in events:
            enqueue(conn, event, codec=codec, topic=topic)


def delete_expired(
    pool: ConnectionPool[psycopg.Connection[Any]], key_ttl_s: float, limit: int = 10_000
) -> int:
    """Delete up to ``limit`` records older than the key window; return how many."""
    with pool.connection() as conn, conn.transaction():
        cursor = conn.execute(
            "DELETE FROM oncepipe.ingest_requests WHERE ctid IN (SELECT ctid FROM"
            " oncepipe.ingest_requests WHERE created_at < now() - make_interval(secs => %s)"
            " LIMIT %s)",
            (key_ttl_s, limit),
        )
        return cursor.rowcount
