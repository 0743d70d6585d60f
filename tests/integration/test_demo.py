"""`oncepipe demo` tells the story truthfully: the naive counters inflate, oncepipe's are exact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from oncepipe.settings import Settings
from tests.fixtures.relay import ONCEPIPE, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_shows_naive_inflation_and_exact_oncepipe_counters(
    settings: Settings, tmp_path: Path
) -> None:
    output = tmp_path / "demo"
    result = subprocess.run(
        [ONCEPIPE, "demo", "--events", "1200", "--rate", "400", "--output", str(output)],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((output / "report.json").read_text())
    assert report["oncepipe_exact"] is True
    assert sum(report["oncepipe"].values()) == report["distinct_events"] == 1200
    assert report["topic_records"] > report["distinct_events"]  # re-sends became records
    assert report["naive_inflation_pct"] > 0
    assert report["naive_items_overcounted"] > 0
    assert "| oncepipe counters vs truth |" in (output / "report.md").read_text()
    assert (output / "chart.png").stat().st_size > 10_000
