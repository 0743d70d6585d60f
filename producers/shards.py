"""Shard leases: which relay publishes which shard of the outbox (migration 0013).

A row's shard is a hash of its Kafka key, so one key's rows share a shard. Each shard has one
lease in ``oncepipe.relay_shards``; a relay renews its leases before every pass and publishes
only the shards it still holds. Fair share: with ``n`` live relays (a heartbeat within the lease
term in ``oncepipe.relay_members``) a relay holds at most ``ceil(shards / n)``; it releases the
excess between two passes (after its batch in flight is marked) and claims free or expired
shards up to its share. A dead or stalled relay's shards are claimed once its lease ran out,
so fail-over takes at most one lease term plus one renewal interval.

Public names: ``ShardLeases``, ``ShardOwner``, ``read_owners``, ``new_relay_id``.
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["ShardLeases", "ShardOwner", "new_relay_id", "read_owners"]

_HEARTBEAT = """
INSERT INTO oncepipe.relay_members (relay_id, host, pid) VALUES (%(me)s, %(host)s, %(pid)s)
ON CONFLICT (relay_id) DO UPDATE SET heartbeat_at = now()
"""
_LIVE = """
SELECT count(*) FROM oncepipe.relay_members
WHERE heartbeat_at > now() - make_interval(secs => %(lease)s)
"""
_RENEW = """
UPDATE oncepipe.relay_shards SET lease_until = now() + make_interval(secs => %(lease)s)
WHERE owner = %(me)s RETURNING shard
"""
_RELEASE = """
UPDATE oncepipe.relay_shards SET owner = NULL, lease_until = NULL
WHERE owner = %(me)s AND shard = ANY(%(shards)s)
"""
_CLAIM = """
UPDATE oncepipe.relay_shards s
SET owner = %(me)s, epoch = s.epoch + 1, claimed_at = now(),
    lease_until = now() + make_interval(secs => %(lease)s)
WHERE s.shard IN (
    SELECT shard FROM oncepipe.relay_shards
    WHERE owner IS NULL OR lease_until < now()
    ORDER BY shard LIMIT %(need)s FOR UPDATE SKIP LOCKED)
RETURNING s.shard, s.epoch
"""
_LEAVE = """
WITH released AS (
    UPDATE oncepipe.relay_shards SET owner = NULL, lease_until = NULL WHERE owner = %(me)s
)
DELETE FROM oncepipe.relay_members WHERE relay_id = %(me)s
"""
_FORGET = """
DELETE FROM oncepipe.relay_members
WHERE heartbeat_at < now() - make_interval(secs => %(forget)s)
"""
_OWNERS = """
SELECT s.shard, s.owner, s.epoch, s.lease_until, s.lease_until > now(), m.host, m.pid
FROM oncepipe.relay_shards s LEFT JOIN oncepipe.relay_members m ON m.relay_id = s.owner
ORDER BY s.shard
"""
# A member silent for this many lease terms is removed from the members table.
FORGET_AFTER_LEASES = 60


def new_relay_id() -> str:
    """A relay's name for its leases: host, process id and a random suffix (unique per start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Change:
    """What one renewal changed: shards claimed (with their new epoch), released and lost."""

    claimed: dict[int, int]
    released: frozenset[int]
    lost: frozenset[int]


class ShardLeases:
    """The leases of one relay; every method runs on the caller's autocommit connection."""

    def __init__(self, relay_id: str, lease_s: float) -> None:
        self.relay_id = relay_id
        self._lease_s = lease_s
        self.owned: frozenset[int] = frozenset()

    def renew(self, conn: psycopg.Connection[Any]) -> Change:
        """Heartbeat, renew held leases, then release or claim shards toward the fair share.

        One transaction: the shards returned are held for at least one lease term from now.
        """
        params: dict[str, Any] = {
            "me": self.relay_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "lease": self._lease_s,
        }
        with conn.transaction():
            conn.execute(_HEARTBEAT, params)
            renewed = {int(r[0]) for r in conn.execute(_RENEW, params).fetchall()}
            total_row = conn.execute("SELECT count(*) FROM oncepipe.relay_shards").fetchone()
            live_row = conn.execute(_LIVE, params).fetchone()
            total = int(total_row[0]) if total_row else 0
            live = max(1, int(live_row[0]) if live_row else 1)
            share = math.ceil(total / live)
            released: set[int] = set()
            claimed: dict[int, int] = {}
            if len(renewed) > share:
                released = set(sorted(renewed)[share:])
                conn.execute(_RELEASE, {**params, "shards": sorted(released)})
            elif len(renewed) < share:
                rows = conn.execute(_CLAIM, {**params, "need": share - len(renewed)}).fetchall()
                claimed = {int(r[0]): int(r[1]) for r in rows}
            conn.execute(_FORGET, {"forget": self._lease_s * FORGET_AFTER_LEASES})
        lost = self.owned - renewed
        self.owned = frozenset((renewed - released) | claimed.keys())
        return Change(claimed, frozenset(released), frozenset(lost))

    def leave(self, conn: psycopg.Connection[Any]) -> None:
        """Release every shard at once (a clean stop): the others need not wait for the term."""
        conn.execute(_LEAVE, {"me": self.relay_id})
        self.owned = frozenset()


@dataclass(frozen=True)
class ShardOwner:
    """One shard's lease as ``oncepipe status`` shows it."""

    shard: int
    owner: str | None
    epoch: int
    lease_until: datetime | None
    live: bool
    """The lease is within its term (an owner whose lease ran out is being replaced)."""


def read_owners(conn: psycopg.Connection[Any]) -> list[ShardOwner]:
    """Every shard with its owner (None: free) and whether the lease is current."""
    return [
        ShardOwner(int(r[0]), r[1], int(r[2]), r[3], bool(r[4]))
        for r in conn.execute(_OWNERS).fetchall()
    ]
