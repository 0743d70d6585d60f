"""The result of a run: a table on stdout and the same as JSON.

Public names: ``ChaosResult``, ``render``, ``replay_command``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.chaos.checks import CheckResult
from tests.faults.chaos.faults import FaultRecord
from tests.faults.chaos.workers import Exit

__all__ = ["ChaosResult", "render", "replay_command"]


@dataclass
class ChaosResult:
    """Everything a run reports."""

    seed: int
    duration_s: float
    drain_s: float
    config: dict[str, Any]
    events: dict[str, Any]
    faults: list[FaultRecord]
    checks: list[CheckResult]
    exits: list[Exit]
    workdir: str
    notes: list[str] = field(default_factory=list)

    @property
    def violations(self) -> int:
        """Violations over all checks (a check that checked nothing counts as one)."""
        return sum(c.violations or (0 if c.checked else 1) for c in self.checks)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def failed_checks(self) -> list[str]:
        """Names of the checks that did not pass."""
        return [c.name for c in self.checks if not c.passed]

    def faults_by_kind(self) -> dict[str, int]:
        """Injected faults per kind (a fault that raised is not counted)."""
        return dict(Counter(str(f.kind) for f in self.faults if not f.error))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "seed": self.seed,
            "passed": self.passed,
            "violations": self.violations,
            "duration_s": self.duration_s,
            "drain_s": self.drain_s,
            "config": self.config,
            "events": self.events,
            "faults_by_kind": self.faults_by_kind(),
            "faults_injected": sum(self.faults_by_kind().values()),
            "faults": [asdict(f) for f in self.faults],
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
            "worker_exits": [asdict(e) for e in self.exits],
            "workdir": self.workdir,
            "notes": self.notes,
        }

    def write(self, path: Path) -> None:
        """Write the JSON result."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")


def render(result: ChaosResult) -> str:
    """The result table as text."""
    out = [
        f"chaos run  seed={result.seed}  duration={result.duration_s:.0f}s  "
        f"drain={result.drain_s:.0f}s  result={'PASS' if result.passed else 'FAIL'}  "
        f"violations={result.violations}",
        "events: " + ", ".join(f"{k}={v}" for k, v in result.events.items()),
        "",
        f"{'fault kind':<24}{'injected':>9}   failed to inject",
    ]
    failed: Counter[str] = Counter(f.kind for f in result.faults if f.error)
    by_kind = result.faults_by_kind()
    for kind in sorted(set(by_kind) | set(failed)):
        out.append(f"{kind:<24}{by_kind.get(kind, 0):>9}   {failed.get(kind, 0) or ''}")
    out.append(f"{'total':<24}{sum(by_kind.values()):>9}")
    width = max([38, *(len(check.name) + 2 for check in result.checks)])
    out += ["", f"{'invariant check':<{width}}{'inv.':<26}{'checked':>9}{'violations':>11}  result"]
    for check in result.checks:
        verdict = "pass" if check.passed else "FAIL"
        out.append(
            f"{check.name:<{width}}{check.invariant:<26}{check.checked:>9}{check.violations:>11}"
            f"  {verdict}"
        )
        out += [f"    e.g. {example}" for example in check.examples]
        if check.notes:
            out.append(f"    not counted: {len(check.notes)}, e.g. {check.notes[0]}")
    crashes = Counter(e.role for e in result.exits if e.crashed_at_point)
    other = [e for e in result.exits if not e.crashed_at_point]
    out += ["", f"crash points that fired: {dict(crashes) or 0}"]
    out.append(f"other worker exits: {len(other)}")
    out += [f"    {e.name} exit {e.code} at {e.at_s:.0f}s" for e in other[:10]]
    out += [f"note: {note}" for note in result.notes]
    out.append(f"seed {result.seed}: replay with {replay_command(result)}")
    return "\n".join(out)


def replay_command(result: ChaosResult) -> str:
    """The ``make chaos`` line that replays this run's schedule."""
    config = result.config
    planned = float(config.get("duration_s", result.duration_s))
    command = f"make chaos SEED={result.seed} DURATION={planned:.0f}"
    if int(config.get("brokers", 1)) > 1:
        command += f" BROKERS={config['brokers']}"
    return command + (" NETWORK=1" if config.get("network") else "")
