"""`python -m demo` tells the story truthfully: the naive counters inflate, oncepipe's are exact,
poison is dead-lettered, and the dead letters the fix covers are applied once by a replay."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from demo.processes import DEMO
from oncepipe.settings import Settings
from tests.fixtures.database import database_copy
from tests.fixtures.relay import worker_env
from tests.fixtures.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo(
    services: Services,
    admin_url: str,
    migrated_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """One demo run (about 20 s) on a database of its own: report.json, ``output``, ``stderr``."""
    output = tmp_path_factory.mktemp("demo")
    with database_copy(admin_url, migrated_database_url) as database_url:
        settings = Settings(
            kafka_bootstrap_servers=services.bootstrap_servers, database_url=database_url
        )
        result = subprocess.run(
            [*DEMO, "--events", "1200", "--rate", "400", "--output", str(output)],
            env=worker_env(settings),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report: dict[str, Any] = json.loads((output / "report.json").read_text())
        yield report | {"output": output, "stderr": result.stderr}


def test_naive_counters_inflate_and_oncepipe_counters_are_exact(demo: dict[str, Any]) -> None:
    assert demo["oncepipe_exact"] is True
    assert sum(demo["oncepipe"].values()) == demo["distinct_events"] == sum(demo["truth"].values())
    assert demo["topic_records"] > demo["distinct_events"]  # re-sends became records
    # The naive consumer counted every readable record it read, redeliveries included.
    naive_total = sum(demo["naive"].values())
    assert naive_total == demo["naive_deliveries"] - demo["naive_dropped"]
    assert naive_total > demo["distinct_events"]
    assert demo["naive_inflation_pct"] > 0
    assert demo["naive_items_overcounted"] > 0
    assert "| oncepipe counters vs truth |" in (demo["output"] / "report.md").read_text()
    assert (demo["output"] / "chart.png").stat().st_size > 10_000


def test_poison_is_dead_lettered_and_the_fixed_clicks_are_applied_by_the_replay(
    demo: dict[str, Any],
) -> None:
    stages = demo["dead_letters_by_stage"]
    assert demo["dead_letters_before_replay"] == len(demo["dlq_list"]) == sum(stages.values()) > 0
    # Every poison submission is one dead letter: corrupt bodies fail to decode, the empty
    # user_id fails validation; the naive consumer read and dropped each of them.
    assert stages.get("decode", 0) + stages.get("validate", 0) == sum(
        demo["poison_submitted"].values()
    )
    assert demo["naive_dropped"] >= sum(demo["poison_submitted"].values()) > 0
    # Clicks on new items were refused until the catalog learned them; counted only after.
    assert demo["new_item_events"] > 0
    assert demo["catalog_items_added"]
    assert all(item.startswith("new-item-") for item in demo["catalog_items_added"])
    assert demo["dead_letters_replayed"] == stages["handle"]
    assert demo["dead_letters_applied_after_replay"] == demo["new_item_events"]
    assert demo["oncepipe_total_before_replay"] == demo["distinct_events"] - demo["new_item_events"]
    # The unfixable stay dead-lettered; the replay refused nothing again.
    assert demo["dead_letters_from_replay"] == 0
    assert demo["dead_letters_after_replay"] == sum(demo["poison_submitted"].values())
    report = (demo["output"] / "report.md").read_text()
    assert "| dead letters before replay |" in report
    assert "| dead letters after replay |" in report
    assert "oncepipe dlq list --topic" in report
    assert "$ oncepipe dlq replay" in demo["stderr"]
