"""The shard-ownership check on hand-made claim logs (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.faults.chaos.evidence import Evidence
from tests.faults.chaos.shard_checks import ShardClaim, check_shard_leases_exclusive
from tests.faults.chaos.verdict import Observations

START = datetime(2026, 1, 1, tzinfo=UTC)
NO_OBSERVATIONS = Observations(1, [], [], [], True, "drained")


def at(second: float) -> datetime:
    return START + timedelta(seconds=second)


def checked(*claims: ShardClaim) -> tuple[int, int, list[str]]:
    evidence = Evidence(topics={}, shard_claims=list(claims))
    result = check_shard_leases_exclusive(evidence, NO_OBSERVATIONS)
    return result.checked, result.violations, result.examples


def test_claims_of_free_released_and_expired_leases_pass() -> None:
    assert checked(
        ShardClaim(3, "a", at(0), None, None),  # free since the migration
        ShardClaim(3, None, at(5), "a", at(10)),  # a released it (SIGTERM, or its excess)
        ShardClaim(3, "b", at(6), None, None),
        ShardClaim(3, "c", at(20), "b", at(16)),  # b died; its lease ran out at 16
        ShardClaim(3, "c", at(21), "c", at(31)),  # a renewal is no owner change
    ) == (4, 0, [])


def test_a_claim_of_a_shard_whose_owner_still_held_its_lease_is_reported() -> None:
    count, violations, examples = checked(
        ShardClaim(7, "a", at(0), None, None),
        ShardClaim(7, "b", at(4), "a", at(10)),  # a's lease ran until 10
    )
    assert (count, violations) == (2, 1)
    assert "shard 7 claimed by b" in examples[0]
