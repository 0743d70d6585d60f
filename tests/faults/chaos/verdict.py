"""What a check reports, and what was seen during the run (not in the final state).

Public names: ``CheckResult``, ``Observations``, ``EXAMPLES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EXAMPLES", "CheckResult", "Observations"]

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
