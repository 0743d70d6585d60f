"""What a check reports, and what was seen during the run (not in the final state).

Public names: ``CheckResult``, ``Observations``, ``EXAMPLES``, ``DRAIN_DEPENDENT``,
``drain_consequences``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DRAIN_DEPENDENT", "EXAMPLES", "CheckResult", "Observations", "drain_consequences"]

EXAMPLES = 5


@dataclass
class CheckResult:
    """The outcome of one invariant check."""

    name: str
    invariant: str
    checked: int = 0
    violations: int = 0
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things seen that are not violations

    @property
    def passed(self) -> bool:
        """True when nothing violated the invariant (and something was checked)."""
        return self.violations == 0 and self.checked > 0

    def violate(self, example: str) -> None:
        """Count one violation, keeping the first few as examples."""
        self.violations += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


@dataclass(frozen=True)
class Observations:
    """What was seen during the run (not in the final state)."""

    samples: int
    orphans: list[str]
    sampled_regressions: list[tuple[str, int, int, int]]
    clean_stops: list[tuple[str, int, bool]]
    drained: bool
    drain_detail: str
    # (worker, role, exit code, last log line) of each worker that ended on its own, not at a
    # crash point that fired
    exits: list[tuple[str, str, int, str]] = field(default_factory=list)


# Checks that compare the final state with everything submitted: a run that did not drain
# (records unconsumed, a simulator still submitting, parked keys unreleased) fails them
# whatever the pipeline did right.
DRAIN_DEPENDENT = frozenset(
    {
        "every_record_consumed",
        "records_below_stored_offset_applied",
        "each_event_applied_exactly_once",
        "counters_equal_manifests",
        "per_key_order_is_submission_order",
        "outbox_rows_all_published",
        "poison_key_order_across_release",
        "each_killer_one_crash_dead_letter",
        "each_retried_event_applied_once_after_its_delays",
    }
)


def drain_consequences(checks: list[CheckResult], drained: bool, detail: str) -> str | None:
    """A report line naming the failed checks that may only follow from an undrained run."""
    if drained:
        return None
    failed = [c.name for c in checks if not c.passed and c.name.split(" (")[0] in DRAIN_DEPENDENT]
    if not failed:
        return f"not drained ({detail}); no drain-dependent check failed"
    return (
        f"not drained ({detail}): {', '.join(failed)} may fail only because of it;"
        " the other checks stand on their own"
    )
