"""A new consumer group rebuilds a projection from the start of a topic beside the live one.

The click handler keys every row by consumer group, so a group of a new name is a new
projection: it reads the topic from its log start (no stored offset: ``earliest``) while the
live group runs, ``oncepipe offsets compare`` says when it has caught up, and it takes over.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from oncepipe.settings import Settings
from tests.fixtures.relay import worker_env
from tests.fixtures.workers import (
    ONCEPIPE,
    ClickStream,
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    read_totals,
    wait_until,
    with_duplicates,
)

pytestmark = pytest.mark.integration


def _compare(settings: Settings, group: str, other: str) -> tuple[int, dict[str, object]]:
    result = subprocess.run(
        [ONCEPIPE, "offsets", "compare", "--group", group, "--with", other, "--json"],
        env=worker_env(settings), capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return result.returncode, json.loads(result.stdout)


def test_a_rebuild_group_catches_up_beside_the_live_one_and_takes_over(
    settings: Settings, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic("rebuild", 4)
    url = settings.database_url.get_secret_value()
    (tmp_path / "live").mkdir()
    (tmp_path / "rebuild").mkdir()
    live = WorkerPool(settings, tmp_path / "live", f"live-{uuid.uuid4().hex[:6]}", topic)
    rebuild = WorkerPool(settings, tmp_path / "rebuild", f"rebuild-{uuid.uuid4().hex[:6]}", topic)
    records = with_duplicates(make_clicks(800, seed=2906), 0.2, seed=2906)
    half = len(records) // 2
    try:
        live.start()
        live.start()
        produce_clicks(settings, topic, records[:half])
        wait_until(caught_up(url, live.group, half), 90, "the live group applied the first half")

        code, before = _compare(settings, rebuild.group, live.group)
        assert (code, before["behind"]) == (1, half)  # nothing stored yet: behind by everything
        stream = ClickStream(settings, topic, records[half:], rate=200)
        stream.start()
        rebuild.start()  # while the live group applies the stream
        stream.finish()
        wait_until(caught_up(url, live.group, len(records)), 90, "the live group caught up")
        wait_until(lambda: _compare(settings, rebuild.group, live.group)[0] == 0, 90,
                   "offsets compare to say the rebuild caught up")  # fmt: skip
        code, after = _compare(settings, rebuild.group, live.group)
        assert (code, after["behind"]) == (0, 0)

        # Take over: the live group stops; the rebuild's projection is the same, exactly.
        for worker in live.workers:
            assert worker.terminate() == 0
        rebuilt = assert_exact(url, rebuild.group, records)
        previous = read_totals(url, live.group)
        assert (rebuilt.items, rebuilt.user_items) == (previous.items, previous.user_items)
        assert rebuilt.stored_offsets == previous.stored_offsets
    finally:
        live.reap()
        rebuild.reap()
