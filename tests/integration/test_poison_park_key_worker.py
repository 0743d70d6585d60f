"""park-key end to end: real Kafka, a real worker (``--on-poison park-key``), the dlq commands.

A record of key K1 is refused by the handler (its item is not in the catalog yet) and a record
of K2 too; the later events of K1 and K2 are parked while every other key flows.
``oncepipe dlq list`` shows each blocker's parked count; after the fix, ``oncepipe dlq replay``
of K1's blocker applies it and then K1's parked events in their original order, once;
``oncepipe dlq discard`` of K2's blocker (a ledger row) releases K2's parked events, which the
idle worker applies in order, the blocker itself never.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import psycopg
import pytest

from schemas import ClickEvent
from tests.fixtures.handlers import CATALOG_TABLE
from tests.fixtures.poison import good_record, produce_records
from tests.fixtures.relay import ONCEPIPE, RelayThread, worker_env
from tests.fixtures.witness import WITNESS_DDL, load_witness
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, read_totals, wait_until

pytestmark = pytest.mark.integration


def dlq(pool: WorkerPool, *args: str) -> dict[str, object]:
    """``oncepipe dlq <args> --json``, its JSON answer."""
    result = subprocess.run(
        [ONCEPIPE, "dlq", *args, "--json"], env=worker_env(pool.settings), capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def parked_per_blocker(pool: WorkerPool, dlq_topic: str) -> dict[str, int]:
    listed = dlq(pool, "list", "--topic", dlq_topic)["dead_letters"]
    assert isinstance(listed, list)
    return {str(d["event_id"]): int(d["parked"]) for d in listed}


def test_a_poisoned_key_waits_and_replay_or_discard_releases_it_in_order_once(
    worker_pool: WorkerPool, dlq_topic: str, relay_thread: Callable[..., RelayThread]
) -> None:
    url = worker_pool.settings.database_url.get_secret_value()
    clicks = make_clicks(60, seed=71)
    with psycopg.connect(url) as conn:
        conn.execute(CATALOG_TABLE)
        conn.execute(WITNESS_DDL)
        conn.execute(
            "INSERT INTO public.test_catalog SELECT unnest(%s::text[])",
            (sorted({e.item_id for e in clicks}),),
        )

    def of(user: str, event: ClickEvent, item: str | None = None) -> ClickEvent:
        return event.model_copy(update={"user_id": user, "item_id": item or event.item_id})

    k1 = [of("k1", clicks[0], "new-item-1"), *(of("k1", e) for e in clicks[1:4])]
    k2 = [of("k2", clicks[4], "new-item-2"), *(of("k2", e) for e in clicks[5:7])]
    others = clicks[7:]
    # The later events of K1 and K2 come between other keys' events.
    order = [k1[0], *others[:10], k2[0], k1[1], *others[10:25], k2[1], k1[2], *others[25:40],
             k1[3], k2[2], *others[40:]]  # fmt: skip
    records = produce_records(
        worker_pool.settings, worker_pool.topic, [good_record(e) for e in order]
    )
    relay_thread()
    worker = worker_pool.start(
        handler="tests.fixtures.crash_handlers:witnessed_catalog_clicks",
        on_poison="park-key",
        park_release_check_s="1",
    )
    wait_until(caught_up(url, worker_pool.group, len(records)), 60, "the worker to catch up")
    # Every other key's counters are exact while K1 and K2 wait.
    assert sorted(read_totals(url, worker_pool.group).raw_ids) == sorted(e.event_id for e in others)
    blockers = {str(k1[0].event_id): 3, str(k2[0].event_id): 2}
    wait_until(
        lambda: parked_per_blocker(worker_pool, dlq_topic) == blockers, 60, "the dead letters"
    )

    # The fix (the item exists now), then the replay of K1's blocker only.
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO public.test_catalog VALUES ('new-item-1')")
    sent = dlq(worker_pool, "replay", "--topic", dlq_topic, "--event-id", str(k1[0].event_id),
               "--yes")  # fmt: skip
    assert sent["counts"] == {"sent": 1}
    wait_until(caught_up(url, worker_pool.group, len(records) + 1), 60, "the replay applied")

    # K2's blocker is given up on: a ledger row, and its key released.
    listed = dlq(worker_pool, "list", "--topic", dlq_topic, "--event-id", str(k2[0].event_id))
    letters = listed["dead_letters"]
    assert isinstance(letters, list)
    assert len(letters) == 1
    dlq(worker_pool, "discard", str(letters[0]["ref"]), "--yes")
    applied = [*others, *k1, *k2[1:]]

    def all_applied() -> bool:
        return len(read_totals(url, worker_pool.group).raw_ids) == len(applied)

    wait_until(all_applied, 60, "the discarded blocker's key released")
    assert worker.terminate() == 0, worker.text()[-3000:]

    totals = read_totals(url, worker_pool.group)
    assert sorted(totals.raw_ids) == sorted(e.event_id for e in applied)
    with psycopg.connect(url) as conn:
        witness = load_witness(conn, worker_pool.group)
        ledger = conn.execute(
            "SELECT outcome FROM oncepipe.dlq_replays WHERE event_id = %s", (str(k2[0].event_id),)
        ).fetchall()
    assert ledger == [("discarded",)]
    # Applied once each; each key's events in their original order across parking and release.
    seen = [row.event_id for row in witness]
    assert sorted(seen) == sorted(str(e.event_id) for e in applied)
    assert [i for i in seen if i in {str(e.event_id) for e in k1}] == [str(e.event_id) for e in k1]
    assert [i for i in seen if i in {str(e.event_id) for e in k2}] == [
        str(e.event_id) for e in k2[1:]
    ]
    assert parked_per_blocker(worker_pool, dlq_topic) == {
        str(k1[0].event_id): 0, str(k2[0].event_id): 0
    }  # fmt: skip
