"""A restarted ``python -m demo simulate --manifest`` keeps every submission of its earlier
lives: it appends, so events a killed simulator already sent stay in the manifest the chaos
checks compare the pipeline's effects with."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psycopg
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


def test_a_killed_simulator_keeps_a_line_for_every_event_it_sent(
    settings: Settings, tmp_path: Path
) -> None:
    # Outbox mode: each submission commits on its own before its manifest line is written
    # (direct mode's open Kafka transaction would hide the lines a kill loses).
    topic = f"events.m{uuid.uuid4().hex[:10]}"
    manifest = tmp_path / "manifest-outbox.jsonl"
    proc = subprocess.Popen(
        [*DEMO, "simulate", "--mode", "outbox", "--topic", topic, "--count", "2000",
         "--rate", "40", "--seed", "4", "--manifest", str(manifest)],
        env=worker_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _lines(manifest) < 80:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)  # as the chaos run stops an unfinished simulator
        proc.wait()
    written = {line["event_id"] for line in map(json.loads, manifest.read_text().splitlines())}
    assert len(written) >= 80
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        rows = conn.execute(
            "SELECT dedupe_id FROM oncepipe.outbox WHERE topic = %s", (topic,)
        ).fetchall()
    sent = {str(row[0]) for row in rows}
    # The one submission committed between its COMMIT and its line may be missing.
    assert len(sent - written) <= 1, f"{len(sent - written)} events enqueued, not in the manifest"


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0
