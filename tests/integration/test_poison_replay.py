"""A dead letter whose cause was fixed is applied once by ``oncepipe dlq replay``.

Contract (DESIGN §3): a dead-lettered event gets no inbox row, so its replay applies; a second
replay of it (``--force``) is absorbed by the inbox.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import psycopg
import pytest

from tests.fixtures.handlers import CATALOG_TABLE
from tests.fixtures.poison import (
    assert_applied_exactly,
    dead_letters,
    good_record,
    outbox_dead_letters,
    produce_records,
)
from tests.fixtures.relay import ONCEPIPE, RelayThread, worker_env
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = pytest.mark.integration


def replay(pool: WorkerPool, dlq_topic: str, *flags: str) -> dict[str, object]:
    result = subprocess.run(
        [ONCEPIPE, "dlq", "replay", "--topic", dlq_topic, "--yes", "--json", *flags],
        env=worker_env(pool.settings),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_a_click_refused_by_the_handler_is_applied_once_after_the_fix_and_a_replay(
    worker_pool: WorkerPool, dlq_topic: str, relay_thread: Callable[..., RelayThread]
) -> None:
    url = worker_pool.settings.database_url.get_secret_value()
    events = make_clicks(200, seed=51)
    with psycopg.connect(url) as conn:
        conn.execute(CATALOG_TABLE)
        conn.execute(
            "INSERT INTO public.test_catalog SELECT unnest(%s::text[])",
            (sorted({e.item_id for e in events}),),
        )
    refused = events[120].model_copy(update={"item_id": "new-item"})
    clicks = [*events[:120], refused, *events[121:]]
    records = produce_records(
        worker_pool.settings, worker_pool.topic, [good_record(e) for e in clicks]
    )
    relay_thread()
    worker = worker_pool.start(handler="tests.fixtures.handlers:catalog_clicks")
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the worker to catch up")
    (letter,) = dead_letters(worker_pool.settings, dlq_topic, expected=1)
    assert letter.event_id == str(refused.event_id)
    assert letter.stage == "handle"
    assert "not in the catalog" in letter.error_message
    applied = [e for e in clicks if e != refused]
    assert_applied_exactly(worker_pool, applied, len(records))

    # The fix: the item exists now. The replay puts the original record back on the topic.
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO public.test_catalog VALUES ('new-item')")
    assert replay(worker_pool, dlq_topic)["counts"] == {"sent": 1}
    wait_until(caught_up(url, worker_pool.group, len(records) + 1), 60, "the replay applied")
    assert_applied_exactly(worker_pool, clicks, len(records) + 1)

    # Replayed again on purpose: a new record of the same event, absorbed by the inbox.
    assert replay(worker_pool, dlq_topic, "--force")["counts"] == {"sent": 1}
    wait_until(caught_up(url, worker_pool.group, len(records) + 2), 60, "the second replay")
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert_applied_exactly(worker_pool, clicks, len(records) + 2)
    assert len(outbox_dead_letters(worker_pool.settings, dlq_topic)) == 1
