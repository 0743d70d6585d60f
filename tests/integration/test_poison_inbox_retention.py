"""The inbox's lifecycle: converted in place to daily partitions, expired days dropped live.

Dedupe stays exact across partitions (each has a unique index, and the insert checks the
others); dropping an expired day detaches it CONCURRENTLY, so consumers keep committing while
it waits for a long reader, and the rows of the days kept still dedupe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from consumers.events import InboundEvent
from consumers.inbox import claim_new
from consumers.inbox_partitions import LEGACY, list_partitions
from oncepipe.migrations import MIGRATIONS_DIR, apply_migrations
from tests.fixtures.database import _as_url, create_database, drop_database, with_database
from tests.fixtures.relay import ONCEPIPE, worker_env
from tests.fixtures.services import Services
from tests.fixtures.workers import (
    ClickStream,
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    wait_until,
)

pytestmark = pytest.mark.integration


def _inbound(event_id: uuid.UUID, offset: int) -> InboundEvent:
    (click,) = make_clicks(1, seed=offset)
    return InboundEvent(event=click, event_id=event_id, topic="t", partition=0, offset=offset)


def test_an_existing_inbox_is_converted_in_place_and_its_rows_still_dedupe(
    services: Services, admin_url: str, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0007":
            shutil.copy(path, before / path.name)
    name = f"oncepipe_convert_{uuid.uuid4().hex[:8]}"
    create_database(admin_url, name)
    url = _as_url(with_database(services.database_url, name))
    try:
        apply_migrations(url, before)
        old_ids = [uuid.uuid4() for _ in range(50)]
        with psycopg.connect(url) as conn:
            conn.execute(
                'INSERT INTO oncepipe.inbox (consumer_group, event_id, topic, partition, "offset",'
                " applied_at) SELECT 'g', e, 't', 0, n, now() - interval '3 days'"
                " FROM unnest(%s::uuid[]) WITH ORDINALITY AS x(e, n)",
                (old_ids,),
            )
        assert "0007_inbox_partitioned" in apply_migrations(url)  # and any later ones
        with psycopg.connect(url) as conn, conn.cursor() as cursor:
            kind = conn.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'oncepipe.inbox'::regclass"
            ).fetchone()
            assert kind == ("p",)
            count = conn.execute("SELECT count(*) FROM oncepipe.inbox").fetchone()
            assert count == (50,)
            names = [p.name for p in list_partitions(conn)]
            assert names[0] == LEGACY
            assert len(names) == 4, "the next three days are created with the conversion"
            fresh = uuid.uuid4()
            new = claim_new(cursor, "g", [_inbound(old_ids[0], 100), _inbound(fresh, 101)])
            assert [e.event_id for e in new] == [fresh]
            # Tomorrow's partition, as a batch after midnight would write it: still deduped.
            conn.execute(
                "INSERT INTO oncepipe.inbox (consumer_group, event_id, topic, partition,"
                " \"offset\", applied_at) VALUES ('g', %s, 't', 0, 102, now() + interval '1 day')",
                (uuid.UUID(int=7),),
            )
            again = claim_new(cursor, "g", [_inbound(uuid.UUID(int=7), 103)])
            assert again == []
    finally:
        drop_database(admin_url, name)


def _reshape_into_old_days(url: str, days_back: list[int]) -> dict[str, int]:
    """Replace the (empty) converted table by daily partitions, some weeks old, with rows."""
    today = datetime.now(UTC).date()
    rows: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE oncepipe.inbox DETACH PARTITION oncepipe.{LEGACY}")
        conn.execute(f"DROP TABLE oncepipe.{LEGACY}")
        for back in [*days_back, 0]:
            day = today - timedelta(days=back)
            conn.execute("SELECT oncepipe.inbox_create_partition(%s)", (day,))
            moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            conn.execute(
                "INSERT INTO oncepipe.inbox (consumer_group, event_id, topic, partition,"
                " \"offset\", applied_at) SELECT 'old-group', gen_random_uuid(), 'old', 0, n, %s"
                " FROM generate_series(1, 100) AS n",
                (moment,),
            )
            rows[f"inbox_p{day:%Y%m%d}"] = 100
    return rows


def test_expired_partitions_are_dropped_while_consumers_keep_committing(
    worker_pool: WorkerPool,
) -> None:
    url = worker_pool.settings.database_url.get_secret_value()
    expired = [20, 19, 18, 15]
    _reshape_into_old_days(url, [*expired, 13, 2, 1])
    events = make_clicks(4000, seed=61)
    stream = ClickStream(worker_pool.settings, worker_pool.topic, events, rate=400)
    # Their own hourly maintenance is off: the drop below is the one under test.
    workers = [
        worker_pool.start(batch_size="50", inbox_maintenance_interval_s="0") for _ in range(2)
    ]
    stream.start()
    wait_until(workers[0].logged("batch committed"), 30, "a first committed batch")

    # A long report over the whole inbox: DETACH ... CONCURRENTLY must wait for it to end,
    # and must not make the consumers wait meanwhile.
    reader = psycopg.connect(url)
    reader.execute("SELECT count(*) FROM oncepipe.inbox").fetchone()
    maintain = subprocess.Popen(
        [ONCEPIPE, "inbox", "maintain", "--retention-days", "14", "--json"],
        env=worker_env(worker_pool.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    committed_before = len(_committed(worker_pool))
    time.sleep(4)
    assert maintain.poll() is None, "the detach did not wait for the open reader"
    assert len(_committed(worker_pool)) > committed_before + 5, "consumers were blocked"
    reader.rollback()
    reader.close()
    out, err = maintain.communicate(timeout=60)
    assert maintain.returncode == 0, err
    report = json.loads(out)
    today = datetime.now(UTC).date()
    assert sorted(report["dropped"]) == sorted(
        f"inbox_p{today - timedelta(days=d):%Y%m%d}" for d in expired
    )

    stream.finish()
    wait_until(caught_up(url, worker_pool.group, len(events)), 60, "the workers to catch up")
    for worker in workers:
        assert worker.terminate() == 0, worker.text()[-2000:]
    assert_exact(url, worker_pool.group, events)
    with psycopg.connect(url) as conn:
        names = {p.name for p in list_partitions(conn)}
        old = conn.execute(
            "SELECT count(*) FROM oncepipe.inbox WHERE consumer_group = 'old-group'"
        ).fetchone()
    assert not names & set(report["dropped"])
    assert old == (400,), "the kept days keep their rows"


def _committed(pool: WorkerPool) -> list[dict[str, object]]:
    return [line for line in pool.lines() if line.get("event") == "batch committed"]
