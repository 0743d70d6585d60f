"""The relays' shard ownership: never two live owners of one shard.

``oncepipe.relay_shard_claims`` is written by a trigger of the database (migration 0013) at
every change of a shard's owner, whatever the relay's code believes; each claim records the
lease it replaced. A claim of a shard whose previous owner's lease had not run out means two
relays published that shard at once.

Public names: ``ShardClaim``, ``read_shard_claims``, ``check_shard_leases_exclusive``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from tests.faults.chaos.verdict import CheckResult, Observations

if TYPE_CHECKING:
    from tests.faults.chaos.evidence import Evidence

__all__ = ["ShardClaim", "check_shard_leases_exclusive", "read_shard_claims"]


@dataclass(frozen=True)
class ShardClaim:
    """One change of a shard's owner (owner None: released)."""

    shard: int
    owner: str | None
    at: datetime
    previous_owner: str | None
    previous_lease_until: datetime | None


def read_shard_claims(conn: psycopg.Connection[Any]) -> list[ShardClaim]:
    """Every owner change of the run, in the order they happened."""
    return [
        ShardClaim(*row)
        for row in conn.execute(
            "SELECT shard, owner, at, previous_owner, previous_lease_until"
            " FROM oncepipe.relay_shard_claims ORDER BY id"
        )
    ]


def check_shard_leases_exclusive(ev: Evidence, _obs: Observations) -> CheckResult:
    """Each claim of a shard took a free lease or one that had run out."""
    result = CheckResult("each_shard_one_live_relay", "27.1")
    owners = {claim.owner for claim in ev.shard_claims if claim.owner}
    for claim in ev.shard_claims:
        if claim.owner is None:
            continue
        result.checked += 1
        live = claim.previous_lease_until is not None and claim.previous_lease_until >= claim.at
        if claim.previous_owner not in (None, claim.owner) and live:
            result.violate(
                f"shard {claim.shard} claimed by {claim.owner} at {claim.at.time()} while"
                f" {claim.previous_owner}'s lease ran until {claim.previous_lease_until}"
            )
    result.notes.append(f"{result.checked} claims by {len(owners)} relay starts")
    return result
