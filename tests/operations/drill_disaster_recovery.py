"""Disaster recovery on the real services (``make day-two``; long: not part of ``make test``).

1. Point-in-time restore (``pg_basebackup`` + WAL archive, a named restore point taken while
   clicks streamed in): effects and stored offsets rewind together; the workers re-read from
   Kafka and converge exactly; outbox rows published after the restore point are published
   again and the downstream inbox absorbs them; a partition whose records retention removed
   past the restored offset is held (offset policy) until ``offsets reset``, and exactly its
   records between the two are lost.
2. A standby promoted after asynchronous replication lost its tail: the same convergence.

A deleted and recreated topic is the offset policy's own test:
tests/integration/test_consumer_out_of_range.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.postgres.recovery import ArchivedCluster
from oncepipe.kafka import AdminClient
from oncepipe.migrations import apply_migrations
from oncepipe.settings import Settings
from tests.fixtures.services import Services
from tests.fixtures.workers import (
    ClickStream,
    WorkerPool,
    caught_up,
    make_clicks,
    produce_clicks,
    read_totals,
    wait_until,
    with_duplicates,
)
from tests.operations.recovery_drills import (
    PRIMARY_PORT_OFFSET,
    STANDBY_PORT_OFFSET,
    Upstream,
    assert_effects_match_offsets,
    assert_exact_over,
    delete_up_to_end,
    drill_port,
    drill_root,
    events_of,
    held_lines,
    log_of,
    reset_offsets,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
__all__ = ["drill_root"]  # the fixture, imported for pytest


def _downstream(settings: Settings, tmp_path: Path, topic: str) -> WorkerPool:
    folder = tmp_path / "down"
    folder.mkdir()
    pool = WorkerPool(settings, folder, f"down-{uuid.uuid4().hex[:8]}", topic)
    pool.start()
    return pool


def test_point_in_time_restore_rewinds_effects_and_offsets_together(  # noqa: PLR0917
    services: Services,
    settings: Settings,
    make_topic: Callable[..., str],
    kafka_admin: AdminClient,
    tmp_path: Path,
    drill_root: Path,
) -> None:
    primary = ArchivedCluster.create(drill_root, "primary", drill_port(PRIMARY_PORT_OFFSET))
    apply_migrations(primary.url)
    up = Upstream(services.bootstrap_servers, primary, make_topic("dr-clicks", 3), tmp_path)
    out_topic = make_topic("dr-out", 3)
    clicks = make_clicks(900, seed=2901)
    records = with_duplicates(clicks, 0.2, seed=2901)
    a, b, c = records[:360], records[360:720], records[720:]
    derived = make_clicks(300, seed=2902)
    down = _downstream(settings, tmp_path, out_topic)
    try:
        # Before the backup: clicks applied, derived events published.
        up.start_workers()
        up.start_relay()
        produce_clicks(up.settings, up.topic, a)
        up.enqueue(derived[:100], out_topic)
        up.wait_applied(len(a))
        up.wait_published()
        backup = primary.base_backup("backup")
        # After it: derived rows queued while the relay is away, then a restore point taken
        # while clicks stream in; the relay publishes those rows only after the point.
        up.stop_relays()
        up.enqueue(derived[100:200], out_topic)
        stream = ClickStream(up.settings, up.topic, b, rate=150)
        stream.start()
        up.wait_applied(len(a) + len(b) // 3)
        primary.restore_point("before-the-disaster")
        stream.finish()
        up.wait_applied(len(a) + len(b))
        up.start_relay()
        up.wait_published()
        produce_clicks(up.settings, up.topic, c)
        up.enqueue(derived[200:], out_topic)
        up.wait_applied(len(records))
        up.wait_published()
        wait_until(caught_up(settings.database_url.get_secret_value(), down.group, 300), 120,
                   "downstream applied the derived events")  # fmt: skip
        log = log_of(services.bootstrap_servers, up.topic, len(records))

        # The disaster: the primary is gone; restore the backup up to the restore point.
        up.stop_relays()
        up.stop_workers()
        primary.stop("immediate")
        up.cluster = primary.restore(backup, "before-the-disaster", "restored")

        totals, below = assert_effects_match_offsets(up.url, up.group, log, clicks)
        assert len(a) < len(below) < len(records)  # rewound into the stream
        assert up.unpublished() == 100  # the rows the relay published after the point
        # Retention shorter than the restore point, on partition 0: the records between the
        # restored offset and the end are gone from Kafka.
        p0_end = max(r.offset for r in log if r.partition == 0) + 1
        p0_restored = totals.stored_offsets[0]
        assert p0_restored < p0_end
        delete_up_to_end(kafka_admin, up.topic, 0, p0_end)

        pool = up.start_workers(out_of_range_recheck_s="1")
        up.start_relay()
        wait_until(lambda: bool(held_lines(pool)), 90, "partition 0 held out of range")
        held = held_lines(pool)[0]
        assert (held["stored_offset"], held["log_start"]) == (p0_restored, p0_end)
        assert "--partition 0" in held["fix"]
        reset_offsets(up.settings, up.group, up.topic, "--partition", "0", "--to", "earliest")
        up.wait_applied(len(records))
        up.wait_published()

        lost = [r for r in log if r.partition == 0 and p0_restored <= r.offset < p0_end]
        kept = [r for r in log if r not in lost]
        assert_exact_over(up.url, up.group, events_of(kept, clicks))
        # Downstream: the 100 rows published twice are 100 more records, absorbed by its inbox.
        out = log_of(services.bootstrap_servers, out_topic, 400)
        assert len(out) == 400
        database = settings.database_url.get_secret_value()
        wait_until(caught_up(database, down.group, 400), 120, "downstream read the copies")
        assert_exact_over(database, down.group, derived)
        assert read_totals(database, down.group).inbox == 300
    finally:
        up.reap()
        down.reap()


def test_a_promoted_standby_that_lost_a_tail_converges(
    services: Services,
    settings: Settings,
    make_topic: Callable[..., str],
    tmp_path: Path,
    drill_root: Path,
) -> None:
    primary = ArchivedCluster.create(drill_root, "primary", drill_port(PRIMARY_PORT_OFFSET))
    apply_migrations(primary.url)
    standby = primary.standby("standby", drill_port(STANDBY_PORT_OFFSET))
    up = Upstream(services.bootstrap_servers, primary, make_topic("dr-clicks", 3), tmp_path)
    out_topic = make_topic("dr-out", 3)
    clicks = make_clicks(600, seed=2903)
    records = with_duplicates(clicks, 0.2, seed=2903)
    a, b = records[:360], records[360:]
    derived = make_clicks(200, seed=2904)
    down = _downstream(settings, tmp_path, out_topic)
    try:
        up.start_workers()
        produce_clicks(up.settings, up.topic, a)
        up.enqueue(derived[:100], out_topic)  # queued, the relay is not running yet
        up.wait_applied(len(a))
        lsn = primary.psql("SELECT pg_current_wal_lsn()")
        wait_until(
            lambda: standby.psql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'") == "t",
            60,
            "the standby replayed the first part",
        )
        # Replication stops (the standby falls behind); the primary goes on alone.
        standby.stop()
        up.start_relay()
        up.wait_published()
        produce_clicks(up.settings, up.topic, b)
        up.enqueue(derived[100:], out_topic)
        up.wait_applied(len(records))
        up.wait_published()
        log = log_of(services.bootstrap_servers, up.topic, len(records))

        # The primary dies; the standby, behind by the whole tail, is promoted.
        up.stop_relays()
        up.stop_workers()
        primary.stop("immediate")
        standby.start()
        standby.promote()
        up.cluster = standby
        totals, _ = assert_effects_match_offsets(up.url, up.group, log, clicks)
        assert sum(totals.stored_offsets.values()) == len(a)  # the tail is lost
        assert up.unpublished() == 100  # published from the lost tail: sent again

        up.start_workers()
        up.start_relay()
        up.wait_applied(len(records))
        up.wait_published()
        assert_exact_over(up.url, up.group, events_of(log, clicks))
        # derived[100:] was written only on the lost primary: published once, never again.
        out = log_of(services.bootstrap_servers, out_topic, 300)
        assert len(out) == 300
        database = settings.database_url.get_secret_value()
        wait_until(caught_up(database, down.group, 300), 120, "downstream read the copies")
        assert_exact_over(database, down.group, derived)
    finally:
        up.reap()
        down.reap()
