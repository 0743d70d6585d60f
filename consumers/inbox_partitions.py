"""Inbox partitions: create the coming days' ahead, drop those past the retention.

This is DDL, run by ``oncepipe maintain`` (scheduled by the deployment) as the schema's owner,
never by a worker: a consumer only watches how far ahead the partitions reach and warns
(``Maintainer``). Neither step blocks running consumers:

1. a new day is created as a standalone table, then attached (``oncepipe.inbox_create_
   partition``): ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, which inserts (ROW
   EXCLUSIVE) do not conflict with;
2. an expired day is detached with ``DETACH PARTITION ... CONCURRENTLY``, which waits for the
   transactions that may still read it instead of locking them out; one left half-detached by
   an interrupted run is finished with ``DETACH ... FINALIZE``;
3. the detached table is dropped under a short ``lock_timeout``, retried: nothing but a
   straggler that planned with it before the detach can hold a lock on it.

The rows of ``oncepipe.inbox_ahead`` (ids applied before their UUIDv7 time said, migration
0022) go once no partition that could hold their inbox row is left: those applied before the
oldest remaining partition's start.

A DEFAULT partition and one ending at MAXVALUE are never dropped, and no day inside an
existing range is created; while a DEFAULT partition exists (it forbids ``CONCURRENTLY``) the
detach is a plain one under a short ``lock_timeout``. A step that fails is reported and the
others still run.

No DEFAULT partition is created: it would forbid ``CONCURRENTLY``, and a day's rows landing in it
would make that day's partition impossible to attach later. A missed run therefore stops
nothing until the pre-created days run out; then every consumer batch fails its inbox insert
(no partition takes the row), is rolled back and retried, and resumes once maintenance ran.

Only one maintainer runs at a time (a session advisory lock; the others skip). Retention must
exceed the topics' retention plus the longest replay window: an event redelivered after its
inbox row was dropped would be applied again.

Public names: ``LEGACY``, ``UNBOUNDED``, ``Partition``, ``MaintenanceReport``, ``Maintainer``,
``maintain``, ``list_partitions``, ``covered_until``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from consumers.settings import ConsumerSettings
from oncepipe.db import connect
from oncepipe.migrations import act_as_owner
from oncepipe.settings import Settings

__all__ = [
    "LEGACY",
    "UNBOUNDED",
    "Maintainer",
    "MaintenanceReport",
    "Partition",
    "covered_until",
    "list_partitions",
    "maintain",
]

LEGACY = "inbox_legacy"
"""The pre-partitioning inbox, converted in place into the partition of all earlier days."""
_LOCK_KEY = 0x6F6E_6365_6962  # "onceib": one inbox maintainer at a time
_DROP_LOCK_TIMEOUT = "2s"
_DROP_TRIES = 5
WARN_AHEAD = timedelta(days=2)
"""A worker warns once the partitions reach less than this far ahead."""

_PARTITIONS = """
SELECT c.relname,
       (regexp_match(b.expr, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz,
       (regexp_match(b.expr, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper,
       b.expr = 'DEFAULT',
       i.inhdetachpending,
       c.reltuples::bigint
FROM pg_inherits AS i
JOIN pg_class AS c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS expr) AS b
WHERE i.inhparent = 'oncepipe.inbox'::regclass
ORDER BY upper NULLS LAST
"""

UNBOUNDED = datetime.max.replace(tzinfo=UTC)
"""The upper bound of a DEFAULT partition or of one that ends at MAXVALUE: never expires."""


@dataclass(frozen=True)
class Partition:
    """One partition of the inbox and the end of its range (exclusive)."""

    name: str
    upper: datetime
    detach_pending: bool = False
    estimated_rows: int = 0
    lower: datetime | None = None
    """None: from MINVALUE (or a DEFAULT partition)."""
    is_default: bool = False
    """The DEFAULT partition: rows no range takes; never dropped by maintenance."""

    def covers(self, moment: datetime) -> bool:
        """True when rows applied at ``moment`` go to this (range) partition."""
        if self.is_default:
            return False
        return (self.lower is None or self.lower <= moment) and moment < self.upper


@dataclass
class MaintenanceReport:
    """What a maintenance run created and dropped (or would have, with ``dry_run``)."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Partitions a step failed for, with the reason; the other steps still ran."""
    skipped: bool = False
    """Another maintainer held the lock; this run did nothing."""
    expired_ahead: int = 0
    """Rows of ``oncepipe.inbox_ahead`` deleted with the partitions their inbox rows were in."""


def list_partitions(conn: psycopg.Connection[Any]) -> list[Partition]:
    """The inbox's partitions, oldest first."""
    rows = conn.execute(_PARTITIONS).fetchall()
    return [
        Partition(
            name,
            upper if upper is not None else UNBOUNDED,
            bool(pending),
            max(int(n), 0),
            lower=lower,
            is_default=bool(default),
        )
        for name, lower, upper, default, pending, n in rows
    ]


def covered_until(partitions: list[Partition]) -> datetime | None:
    """The end of the range partitions' coverage (``UNBOUNDED`` for MAXVALUE or a DEFAULT).

    None when there is no partition at all.
    """
    if not partitions:
        return None
    if any(p.is_default for p in partitions):
        return UNBOUNDED
    return max(p.upper for p in partitions)


def _name(day: date) -> str:
    return f"inbox_p{day:%Y%m%d}"


def _briefly(conn: psycopg.Connection[Any], statement: sql.Composed) -> None:
    """Run ``statement`` under a short ``lock_timeout``, retried a few times."""
    for attempt in range(1, _DROP_TRIES + 1):
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_DROP_LOCK_TIMEOUT))
                )
                conn.execute(statement)
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == _DROP_TRIES:
                raise
            time.sleep(attempt)


def _drop(conn: psycopg.Connection[Any], partition: Partition, *, concurrently: bool) -> None:
    table = sql.Identifier("oncepipe", partition.name)
    detach = sql.SQL("ALTER TABLE oncepipe.inbox DETACH PARTITION {}").format(table)
    if partition.detach_pending:
        conn.execute(sql.Composed([detach, sql.SQL(" FINALIZE")]))
    elif concurrently:
        conn.execute(sql.Composed([detach, sql.SQL(" CONCURRENTLY")]))
    else:
        # PostgreSQL refuses DETACH ... CONCURRENTLY while a DEFAULT partition exists; a plain
        # one locks the inbox, so it only waits briefly (consumers queue behind it meanwhile).
        _briefly(conn, detach)
    # Nothing but a straggler that planned with it before the detach can hold a lock on it.
    _briefly(conn, sql.SQL("DROP TABLE {}").format(table))


def _expire_ahead(conn: psycopg.Connection[Any], report: MaintenanceReport) -> None:
    """Delete the inbox_ahead rows older than every partition left (none while one is open)."""
    exists = conn.execute("SELECT to_regclass('oncepipe.inbox_ahead') IS NOT NULL").fetchone()
    remaining = list_partitions(conn)
    if not exists or not exists[0] or not remaining:
        return
    lowers = [p.lower for p in remaining]
    if any(lower is None for lower in lowers):
        return  # a partition from MINVALUE (or a DEFAULT one) may hold rows of any age
    floor = min(lower for lower in lowers if lower is not None)
    deleted = conn.execute("DELETE FROM oncepipe.inbox_ahead WHERE applied_at < %s", (floor,))
    report.expired_ahead = deleted.rowcount


def _create(conn: psycopg.Connection[Any], day: date) -> None:
    conn.execute("SELECT oncepipe.inbox_create_partition(%s)", (day,))


def _step(
    conn: psycopg.Connection[Any],
    report: MaintenanceReport,
    name: str,
    action: Callable[..., None],
    *args: Any,
    **kwargs: Any,
) -> bool:
    """Run one create or drop; a failure is reported and the other steps still run."""
    try:
        action(conn, *args, **kwargs)
    except psycopg.Error as exc:
        if conn.broken:
            raise
        report.failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        return False
    return True


def maintain(
    conn: psycopg.Connection[Any],
    *,
    retention_days: int,
    ahead_days: int = 3,
    dry_run: bool = False,
    today: date | None = None,
) -> MaintenanceReport:
    """Create the next ``ahead_days`` days' partitions, drop those older than the retention.

    ``conn`` must be in autocommit mode (DETACH ... CONCURRENTLY cannot run in a transaction).
    A partition is dropped once its whole range ends before ``today - retention_days``, and the
    ``inbox_ahead`` rows older than every partition left are deleted; a
    DEFAULT partition and one that ends at MAXVALUE are kept, and days inside an existing range
    are not created. A step that fails is listed in ``failed``; the others still run.
    """
    today = today or datetime.now(UTC).date()
    report = MaintenanceReport()
    # Partitions belong to the schema's owner (the role layout of migration 0014), whatever
    # login runs this: SET ROLE to it when this database has that layout.
    act_as_owner(conn)
    locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
    if not locked or not locked[0]:
        report.skipped = True
        return report
    try:
        existing = list_partitions(conn)
        names = {p.name for p in existing}
        for offset in range(ahead_days + 1):
            day = today + timedelta(days=offset)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if _name(day) in names or any(p.covers(start) for p in existing):
                continue  # an existing day, or inside the legacy or an open-ended range
            if not dry_run and not _step(conn, report, _name(day), _create, day):
                continue
            report.created.append(_name(day))
        cutoff = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(
            days=retention_days
        )
        concurrently = not any(p.is_default for p in existing)
        for partition in existing:
            if partition.is_default or partition.upper > cutoff:
                report.kept.append(partition.name)
                continue
            if not dry_run and not _step(
                conn, report, partition.name, _drop, partition, concurrently=concurrently
            ):
                continue
            report.dropped.append(partition.name)
        if not dry_run:
            _step(conn, report, "inbox_ahead", _expire_ahead, report)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return report


class Maintainer:
    """Watches how far ahead the inbox's partitions reach, from a consumer's daemon thread.

    It looks every ``interval_s`` and creates and drops nothing (workers run no DDL).
    It logs a warning once less than ``WARN_AHEAD`` is left (``oncepipe maintain`` has not run
    for days), and an error when no partition covers now: batches are then rolled back and
    retried until maintenance runs. ``retention_days`` is kept for the caller's signature.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        *,
        retention_days: int,
        interval_s: float,
        log: Any,
    ) -> None:
        self._connect = connect
        self._retention_days = retention_days
        self._interval_s = interval_s
        self._log = log
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)

    @classmethod
    def for_worker(
        cls, settings: Settings, config: ConsumerSettings, log: Any
    ) -> Maintainer | None:
        """A started watch for a consumer worker, or None when its interval is 0 (off)."""
        if not config.inbox_maintenance_interval_s:
            return None
        maintainer = cls(
            lambda: connect(settings, "oncepipe-inbox-maintenance", autocommit=True),
            retention_days=config.inbox_retention_days,
            interval_s=config.inbox_maintenance_interval_s,
            log=log,
        )
        maintainer.start()
        return maintainer

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop; does not wait for it."""
        self._stopping.set()

    def check(self, now: datetime | None = None) -> datetime | None:
        """Look once, log what is wrong; returns the end of the coverage (None: no partition)."""
        now = now or datetime.now(UTC)
        with self._connect() as conn:
            until = covered_until(list_partitions(conn))
        if until is None or until <= now:
            self._log.error(
                "no inbox partition covers now: batches are retried until oncepipe maintain runs",
                covered_until=until.isoformat() if until else None,
            )
        elif until - now < WARN_AHEAD:
            self._log.warning(
                "inbox partitions run out soon: run oncepipe maintain (schedule it daily)",
                covered_until=until.isoformat(),
                hours_left=round((until - now).total_seconds() / 3600, 1),
            )
        return until

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - logged; the next look tries again
                self._log.warning(
                    "inbox check failed", error_class=type(exc).__name__, reason=str(exc)
                )
            self._stopping.wait(self._interval_s)
