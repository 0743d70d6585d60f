"""A restarted ``python -m demo simulate --manifest`` keeps every submission of its earlier
lives: it appends, so events a killed simulator already sent stay in the manifest the chaos
checks compare the pipeline's effects with."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from demo.processes import DEMO
from oncepipe.settings import Settings
from tests.fixtures.relay import worker_env

pytestmark = pytest.mark.integration


def _simulate(settings: Settings, topic: str, manifest: Path, count: int) -> None:
    result = subprocess.run(
        [*DEMO, "simulate", "--mode", "direct", "--topic", topic, "--count", str(count),
         "--seed", "3", "--manifest", str(manifest), "--json"],
        env=worker_env(settings), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_restarted_simulator_appends_to_its_manifest(
    settings: Settings, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    manifest = tmp_path / "manifest-direct.jsonl"
    # The first life got 40 submissions out before it died (a shorter run of the same seed
    # submits the same first events); the restarted life replays from the first submission.
    _simulate(settings, topic, manifest, 40)
    first = manifest.read_text().splitlines()
    _simulate(settings, topic, manifest, 100)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert manifest.read_text().splitlines()[: len(first)] == first  # nothing truncated
    assert len(lines) == len(first) + 100
    per_event = Counter(line["event_id"] for line in lines)
    assert len(per_event) == 100
    assert sum(1 for n in per_event.values() if n == 2) == 40  # each replayed once
