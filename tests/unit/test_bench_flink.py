"""The Flink peer's pure helpers: the checkpoint to restore from, the expected effects."""

from __future__ import annotations

from pathlib import Path

from bench.consumer_clicks import clicks
from bench.flink_latency import percentiles
from bench.flink_run import expected, latest_checkpoint


def test_latest_checkpoint_is_the_highest_completed_one(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for name, done in (("chk-2", True), ("chk-10", True), ("chk-11", False)):
        folder = tmp_path / "job-a" / name
        folder.mkdir(parents=True)
        if done:  # a checkpoint in progress (or cut by a kill) has no _metadata yet
            (folder / "_metadata").write_bytes(b"x")
    assert latest_checkpoint(tmp_path) == tmp_path / "job-a" / "chk-10"


def test_expected_effects_count_each_distinct_event_once() -> None:
    records = clicks(300, 0.2, seed=3)
    effects = expected(records)
    assert len(records) == 360
    assert sum(effects.rows.values()) == 300
    assert set(effects.rows.values()) == {1}
    assert sum(effects.items.values()) == 300
    assert sum(effects.user_items.values()) == 300


def test_percentiles_of_a_known_spread() -> None:
    assert percentiles([float(n) for n in range(1, 101)]) == {
        "p50_ms": 51.0, "p95_ms": 96.0, "p99_ms": 100.0, "max_ms": 100.0,
    }  # fmt: skip
