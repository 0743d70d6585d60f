"""Hypothesis settings of the parser fuzz tests, chosen by ``ONCEPIPE_FUZZ_PROFILE``.

- ``short`` (the default, what ``make test`` runs): a few hundred examples per target,
  derandomized so every run tries the same inputs; no per-example deadline, since a timed
  check would flake on a loaded machine (``TIMEOUT`` still ends a hang).
- ``long`` (``make fuzz``): ``ONCEPIPE_FUZZ_EXAMPLES`` examples per target (5,000 unless
  told; each example feeds its parser about twenty inputs, cheap byte-level variants of the
  generated ones, so over 100,000 inputs per target), random seeds, and a per-example
  deadline: an input that makes a parser spin fails.

The settings apply to the fuzz tests only (a decorator, not a global profile), so the other
hypothesis tests of the suite keep their own.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings

__all__ = ["FUZZ", "FUZZ_SIDE", "INPUTS", "PROFILE", "TIMEOUT", "fed"]

_SLOW_INPUTS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "oncepipe-fuzz-short",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=_SLOW_INPUTS,
)
settings.register_profile(
    "oncepipe-fuzz-long",
    max_examples=int(os.environ.get("ONCEPIPE_FUZZ_EXAMPLES", "5000")),
    deadline=timedelta(seconds=5),
    suppress_health_check=_SLOW_INPUTS,
)

PROFILE = os.environ.get("ONCEPIPE_FUZZ_PROFILE", "short")
if PROFILE not in {"short", "long"}:
    raise RuntimeError(f"ONCEPIPE_FUZZ_PROFILE={PROFILE!r}: choose short (default) or long")

FUZZ = settings(settings.get_profile(f"oncepipe-fuzz-{PROFILE}"))
"""Decorate each fuzz target with this (below ``@given``)."""

TIMEOUT = pytest.mark.timeout(120 if PROFILE == "short" else 3600, method="thread")
"""Each fuzz module's ``pytestmark``: a hang inside compiled code never returns to Python, so
neither hypothesis' deadline nor a signal can end it; the thread method dumps the stacks and
ends the run."""

FUZZ_SIDE = settings(FUZZ, max_examples=max(FUZZ.max_examples // 10, 100))
"""For side properties of a target (a tenth of the examples, at least a hundred)."""

INPUTS: Counter[str] = Counter()
"""Inputs each fuzz target fed its parser in this run (printed at the end of the session)."""


def fed(target: str, count: int = 1) -> None:
    """Count ``count`` inputs given to the parser under ``target``."""
    INPUTS[target] += count
