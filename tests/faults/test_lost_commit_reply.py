"""Network fault: a COMMIT whose reply is lost. The transaction committed, the consumer saw an
error; its retry must be absorbed by the offset compare-and-set and the inbox (invariants 2-4).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from oncepipe.settings import Settings
from tests.faults.netproxy import TcpProxy
from tests.fixtures.workers import (
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    produce_clicks,
    wait_until,
    with_duplicates,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


class OffsetHistory:
    """Samples the stored offsets (directly, not through the proxy) while the consumer runs."""

    def __init__(self, database_url: str, group: str) -> None:
        self._url, self._group = database_url, group
        self.regressions: list[tuple[int, int, int]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: dict[int, int] = {}
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                rows = conn.execute(
                    "SELECT partition, next_offset FROM oncepipe.consumer_offsets"
                    " WHERE consumer_group = %s",
                    (self._group,),
                ).fetchall()
                self.samples += 1
                for partition, offset in rows:
                    if offset < last.get(partition, 0):
                        self.regressions.append((partition, last[partition], offset))
                    last[partition] = offset

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_lost_commit_replies_are_absorbed_with_exact_counters_and_no_offset_regression(
    settings: Settings, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    url = settings.database_url.get_secret_value()
    target = conninfo_to_dict(url)
    proxy = TcpProxy(str(target.get("host", "127.0.0.1")), int(str(target.get("port", 5432))))
    through_proxy = SecretStr(make_conninfo(url, port=str(proxy.port)))
    proxied = settings.model_copy(update={"database_url": through_proxy})
    pool = WorkerPool(proxied, tmp_path, "g-lost-commit", make_topic("clicks", 6))
    records = with_duplicates(make_clicks(3000, seed=41), 0.1, seed=42)
    produce_clicks(settings, pool.topic, records)
    history = OffsetHistory(url, pool.group)
    try:
        worker = pool.start(batch_size="100")
        wait_until(worker.logged("batch committed"), 60, "the first committed batch")
        # Two batch COMMITs (sent in a pipeline with the offsets compare-and-set), then one
        # crash-loop attempt record's (a BEGIN ... COMMIT pipeline on its own connection).
        proxy.lose_commit_replies(2, after="consumer_offsets_move")
        wait_until(lambda: proxy.lost_commit_replies == 2, 60, "two lost batch COMMIT replies")
        proxy.lose_commit_replies(1, after="INSERT INTO oncepipe.consumer_attempts")
        wait_until(lambda: proxy.lost_commit_replies == 3, 60, "a lost attempt COMMIT reply")
        wait_until(caught_up(url, pool.group, len(records)), 120, "the consumer to catch up")
        assert worker.terminate() == 0
    finally:
        history.stop()
        proxy.close()
        pool.reap()

    assert_exact(url, pool.group, records)
    assert history.samples > 10
    assert history.regressions == []
    # The worker did see each lost reply as a failure, and reconnected after each one.
    events = [line.get("event") for line in worker.lines()]
    assert events.count("batch failed, will retry") >= 2
    assert events.count("attempt record failed, will retry") >= 1
    assert proxy.connections >= 4
