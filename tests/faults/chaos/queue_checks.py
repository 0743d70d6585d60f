"""The checks of a queue-mode run: those that apply to a share group, and queue mode's own.

The checks named in ``queue_mode.NOT_APPLICABLE_CHECKS`` are not run (the report says so);
``every_record_applied_or_dead_lettered`` takes the place of ``every_record_consumed``. Every
other check runs as in partition mode, per group.

Public names: ``run_queue_checks``, ``NOT_APPLICABLE``.
"""

from __future__ import annotations

from tests.faults.chaos.checks import (
    GLOBAL_CHECKS,
    Check,
    check_everything_consumed,
    check_key_order,
    check_offsets_covered,
    check_offsets_monotonic,
    check_partition_order,
    run_checks,
)
from tests.faults.chaos.evidence import Evidence
from tests.faults.chaos.poison_checks import check_poison_key_order, check_retried
from tests.faults.chaos.queue_mode import check_every_record_settled
from tests.faults.chaos.verdict import CheckResult, Observations

__all__ = ["NOT_APPLICABLE", "run_queue_checks"]


# What each entry of queue_mode.NOT_APPLICABLE_CHECKS names.
NOT_APPLICABLE: frozenset[Check] = frozenset(
    {
        check_offsets_covered,
        check_everything_consumed,
        check_offsets_monotonic,
        check_key_order,
        check_partition_order,
        check_poison_key_order,
        check_retried,
    }
)


def run_queue_checks(groups: list[tuple[Evidence, Observations]]) -> list[CheckResult]:
    """The applicable checks on the first group, the per-group ones again on each other group
    (named ``<check> (group <name>)``), and queue mode's drain check on every group."""
    skip = NOT_APPLICABLE
    results: list[CheckResult] = []
    for n, (evidence, observations) in enumerate(groups):
        found = run_checks(evidence, observations, skip=skip if n == 0 else skip | GLOBAL_CHECKS)
        found.append(check_every_record_settled(evidence, observations))
        if n > 0:
            for result in found:
                result.name = f"{result.name} (group {evidence.group})"
        results += found
    return results
