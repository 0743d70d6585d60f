"""Results of one suite: cases, each with variants run interleaved, written as JSON.

Public names: ``Variant``, ``SuiteResult``, ``interleave``, ``RESULTS_DIR``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import Sample, ratio, summarise

__all__ = ["RESULTS_DIR", "SuiteResult", "Variant", "interleave"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Variant:
    """One way of doing the work: a name, what it is, and a function timing one run."""

    name: str
    description: str
    run: Callable[[], Sample]


def interleave(runs: int, variants: list[Variant]) -> dict[str, list[Sample]]:
    """Run every variant ``runs`` times, back to back, alternating the order each round."""
    samples: dict[str, list[Sample]] = {v.name: [] for v in variants}
    for round_no in range(runs):
        order = variants if round_no % 2 == 0 else list(reversed(variants))
        for variant in order:
            samples[variant.name].append(variant.run())
    return samples


class SuiteResult:
    """The cases of one suite, written to ``bench/results/<suite>.json``."""

    def __init__(self, suite: str, *, quick: bool) -> None:
        self.suite = suite
        self.quick = quick
        self.cases: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self._started = time.time()

    def add_case(
        self,
        case: str,
        variants: list[Variant],
        samples: dict[str, list[Sample]],
        *,
        baseline: str,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Summarise one case; every variant gets its ratio to ``baseline``."""
        summaries = {name: summarise(runs) for name, runs in samples.items()}
        entry = {
            "case": case,
            "baseline": baseline,
            "params": params or {},
            "variants": [
                {
                    "name": v.name,
                    "description": v.description,
                    "summary": summaries[v.name],
                    "ratio_to_baseline": ratio(summaries[v.name], summaries[baseline]),
                    "samples": [s.as_dict() for s in samples[v.name]],
                }
                for v in variants
                if v.name in samples
            ],
        }
        self.cases.append(entry)
        return entry

    def add_latency_case(
        self, case: str, runs: dict[str, list[dict[str, Any]]], *, params: dict[str, Any]
    ) -> dict[str, Any]:
        """One latency case: per mode, every run's percentiles and their median and spread."""
        modes = []
        for name, samples in runs.items():
            keys = [k for k in samples[0] if k.endswith("_ms")]
            summary = {
                k: {
                    "median": statistics.median(s[k] for s in samples),
                    "min": min(s[k] for s in samples),
                    "max": max(s[k] for s in samples),
                }
                for k in keys
            }
            modes.append({"name": name, "summary": summary, "runs": samples})
        entry = {"case": case, "kind": "latency", "params": params, "modes": modes}
        self.cases.append(entry)
        return entry

    def write(self, directory: Path = RESULTS_DIR) -> Path:
        """Write the JSON file and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.suite}.json"
        data = {
            "suite": self.suite,
            "quick": self.quick,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self._started)),
            "seconds": round(time.time() - self._started, 1),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count() or 0,
                "platform": platform.platform(),
            },
            "notes": self.notes,
            "cases": self.cases,
        }
        path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        return path
