"""The inbox look-up skips old partitions for UUIDv7 ids and still never misses a duplicate.

Against the real PostgreSQL: an inbox of daily partitions reaching 14 days back (as a
retention of 14 days leaves it), copies of events placed in old partitions as the claim of
that day would have written them, then the claim of a duplicate.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from consumers.events import InboundEvent
from consumers.inbox import claim_new
from consumers.inbox_partitions import maintain
from oncepipe.migrations import MIGRATIONS_DIR, apply_migrations
from schemas import uuid7, uuid7_time
from tests.fixtures.database import create_database, drop_database, with_database
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration

PAST_DAYS = 14


class Nothing(BaseModel):
    """An empty event body: the inbox reads only ids and coordinates."""


def _event(event_id: uuid.UUID, offset: int) -> InboundEvent:
    return InboundEvent(Nothing(), event_id, "t", 0, offset)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def inbox(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to an inbox of daily partitions from 14 days ago to 3 days ahead."""
    today = datetime.now(UTC).date()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET ROLE oncepipe_owner")  # as `oncepipe maintain` creates them
        conn.execute("DROP TABLE oncepipe.inbox_legacy")  # empty; covers up to tonight
        for offset in range(-PAST_DAYS, 4):
            conn.execute(
                "SELECT oncepipe.inbox_create_partition(%s)", (today + timedelta(days=offset),)
            )
        conn.execute("RESET ROLE")
        yield conn


def _place(conn: psycopg.Connection[Any], event_id: uuid.UUID, applied_at: datetime) -> str:
    """An inbox row of group g as a claim at ``applied_at`` wrote it; returns its partition."""
    row = conn.execute(
        'INSERT INTO oncepipe.inbox (consumer_group, event_id, topic, partition, "offset",'
        " applied_at) VALUES ('g', %s, 't', 0, 0, %s) RETURNING tableoid::regclass::text",
        (event_id, applied_at),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _claim(conn: psycopg.Connection[Any], *ids: uuid.UUID) -> list[uuid.UUID]:
    """The ids of one committed batch's claim that were new."""
    with conn.transaction(), conn.cursor() as cursor:
        new = claim_new(cursor, "g", [_event(i, n + 1) for n, i in enumerate(ids)])
    return [e.event_id for e in new]


def test_postgresql_reads_the_time_of_a_uuid7_as_python_writes_it(
    inbox: psycopg.Connection[Any],
) -> None:
    # RFC 9562's example (2022-02-22 19:22:22 UTC), a fresh one, and a uuid4 (no time).
    rfc = uuid.UUID("017f22e2-79b0-7cc3-98c4-dc0c0c07398f")
    fresh = uuid7()
    rows = inbox.execute(
        "SELECT oncepipe.uuid_v7_ms(%s), oncepipe.uuid_v7_ms(%s), oncepipe.uuid_v7_ms(%s)",
        (rfc, fresh, uuid.uuid4()),
    ).fetchone()
    assert rows is not None
    assert rows[0] == 1645557742000
    fresh_time = uuid7_time(fresh)
    assert fresh_time is not None
    assert rows[1] == _ms(fresh_time)
    assert rows[2] is None


def test_a_duplicate_of_a_uuid7_event_applied_days_ago_is_still_found(
    inbox: psycopg.Connection[Any],
) -> None:
    today = datetime.now(UTC).date()
    created = _midnight(today - timedelta(days=5)) + timedelta(hours=9)
    days_ago = uuid7(_ms(created))
    # The earliest a claim may have put a copy without an inbox_ahead row: an hour before the
    # id's time, here in the partition of the day before the id's day.
    early = uuid7(_ms(_midnight(today - timedelta(days=8)) + timedelta(minutes=10)))
    assert _place(inbox, days_ago, created + timedelta(seconds=3)).endswith(
        f"inbox_p{today - timedelta(days=5):%Y%m%d}"
    )
    assert _place(inbox, early, _midnight(today - timedelta(days=8)) - timedelta(minutes=50))
    fresh = uuid7()

    assert _claim(inbox, days_ago, early, fresh) == [fresh]
    assert _claim(inbox, days_ago, early, fresh) == []


def test_uuid4_ids_are_still_found_in_every_partition(inbox: psycopg.Connection[Any]) -> None:
    today = datetime.now(UTC).date()
    placed = []
    for offset in (-PAST_DAYS, -7, -1, 0):
        event_id = uuid.uuid4()
        _place(inbox, event_id, _midnight(today + timedelta(days=offset)) + timedelta(seconds=1))
        placed.append(event_id)
    fresh = uuid.uuid4()

    assert _claim(inbox, *placed, fresh) == [fresh]


def test_a_duplicate_of_an_id_from_a_clock_far_ahead_is_found_after_the_partitions_move_on(
    inbox: psycopg.Connection[Any], database_url: str
) -> None:
    today = datetime.now(UTC).date()
    ahead = uuid7(_ms(datetime.now(UTC) + timedelta(days=10)))
    assert _claim(inbox, ahead) == [ahead]
    recorded = inbox.execute(
        "SELECT a.applied_at = i.applied_at FROM oncepipe.inbox_ahead AS a"
        " JOIN oncepipe.inbox AS i USING (consumer_group, event_id) WHERE a.event_id = %s",
        (ahead,),
    ).fetchall()
    assert recorded == [(True,)]
    # Three days pass: the copy and its inbox_ahead row are three days old (moved back, as a
    # claim then would have written them), the partitions move on with a maintenance run.
    inbox.execute(
        "UPDATE oncepipe.inbox SET applied_at = applied_at - interval '3 days' WHERE event_id = %s",
        (ahead,),
    )
    inbox.execute(
        "UPDATE oncepipe.inbox_ahead SET applied_at = applied_at - interval '3 days'"
        " WHERE event_id = %s",
        (ahead,),
    )
    report = maintain(inbox, retention_days=PAST_DAYS, today=today + timedelta(days=1))
    assert not report.failed, report.failed
    assert report.expired_ahead == 0

    assert _claim(inbox, ahead) == []
    # Without its inbox_ahead row the look-up would start after the copy's partition: the row
    # is what finds it.
    inbox.execute("DELETE FROM oncepipe.inbox_ahead WHERE event_id = %s", (ahead,))
    with inbox.transaction():
        assert _claim(inbox, ahead) == [ahead]
        raise psycopg.Rollback()


def test_inbox_ahead_rows_go_with_the_last_partition_that_could_hold_their_copy(
    inbox: psycopg.Connection[Any],
) -> None:
    today = datetime.now(UTC).date()
    ahead = uuid7(_ms(datetime.now(UTC) + timedelta(days=10)))
    assert _claim(inbox, ahead) == [ahead]

    kept = maintain(inbox, retention_days=PAST_DAYS, today=today + timedelta(days=PAST_DAYS))
    assert kept.expired_ahead == 0
    gone = maintain(inbox, retention_days=PAST_DAYS, today=today + timedelta(days=PAST_DAYS + 1))

    assert f"inbox_p{today:%Y%m%d}" in gone.dropped
    assert gone.expired_ahead == 1
    left = inbox.execute("SELECT count(*) FROM oncepipe.inbox_ahead").fetchone()
    assert left == (0,)


def _executed_partitions(conn: psycopg.Connection[Any], *ids: uuid.UUID) -> dict[str, bool]:
    """Per inbox partition, whether the claim's look-up probed it (auto_explain's plan)."""
    plans: list[str] = []
    conn.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    for statement in (
        "LOAD 'auto_explain'",
        "SET auto_explain.log_min_duration = 0",
        "SET auto_explain.log_analyze = on",
        "SET auto_explain.log_timing = off",
        "SET auto_explain.log_nested_statements = on",
        "SET auto_explain.log_level = notice",
    ):
        conn.execute(statement)
    with conn.transaction():
        _claim(conn, *ids)
        raise psycopg.Rollback()
    look_up = next(plan for plan in plans if "inbox_look_from(x.event_id)" in plan)
    probes = re.findall(
        r"Index Scan using (inbox_p\d+)_dedupe .*?\((actual[^)]*|never executed)\)", look_up
    )
    return {name: "never executed" not in how for name, how in probes}


def test_the_look_up_of_fresh_uuid7_ids_never_probes_the_old_partitions(
    inbox: psycopg.Connection[Any],
) -> None:
    today = datetime.now(UTC).date()
    old = {f"inbox_p{today - timedelta(days=d):%Y%m%d}" for d in range(2, PAST_DAYS + 1)}

    fresh = _executed_partitions(inbox, *(uuid7() for _ in range(50)))
    full = _executed_partitions(inbox, *(uuid.uuid4() for _ in range(50)))

    assert old <= set(fresh), fresh
    assert not any(fresh[name] for name in old), fresh
    assert fresh[f"inbox_p{today:%Y%m%d}"]
    assert all(full[name] for name in old), full


@pytest.fixture
def before_pruning(services: Services, admin_url: str, tmp_path: Path) -> Iterator[str]:
    """A database migrated up to the migration before 0022_inbox_prune."""
    old = tmp_path / "sql"
    old.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.stem < "0022_inbox_prune":
            shutil.copy(path, old / path.name)
    name = f"oncepipe_prune_{uuid.uuid4().hex[:8]}"
    create_database(admin_url, name)
    url = with_database(services.database_url, name)
    apply_migrations(url, source=old)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def test_the_migration_records_the_rows_already_applied_ahead_of_their_time(
    before_pruning: str,
) -> None:
    ahead, fresh = uuid7(_ms(datetime.now(UTC) + timedelta(days=10))), uuid7()
    with psycopg.connect(before_pruning, autocommit=True) as conn:
        conn.execute(
            "SELECT * FROM oncepipe.inbox_claim('g', %s, '{t,t}', '{0,0}', '{1,2}')",
            ([ahead, fresh],),
        )

    assert "0022_inbox_prune" in apply_migrations(before_pruning)

    with psycopg.connect(before_pruning, autocommit=True) as conn:
        recorded = conn.execute("SELECT event_id FROM oncepipe.inbox_ahead").fetchall()
        assert recorded == [(ahead,)]
        # The copy sits in the converted table, which ends tonight: before the id's look-from.
        assert _claim(conn, ahead, fresh) == []
