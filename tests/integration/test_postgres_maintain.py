"""``oncepipe maintain`` runs the DDL workers no longer run; what a late run does; the upgrade.

On the plaintext server (trust): the component roles of migration 0014 log in without a
password, so each statement runs with exactly its role's grants.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pydantic import BaseModel

from consumers.events import InboundEvent
from consumers.inbox import claim_new
from consumers.inbox_partitions import Maintainer, list_partitions
from oncepipe.errors import DatabaseUnavailableError
from oncepipe.migrations import MIGRATIONS_DIR, apply_migrations
from tests.fixtures.database import create_database, drop_database, with_database
from tests.fixtures.relay import ONCEPIPE
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration

BEFORE_ROLES = "0010_consumer_owners"


class Nothing(BaseModel):
    """An empty event body: the inbox reads only ids and coordinates."""


class Captured:
    """A structlog-like logger that keeps (level, message) pairs."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def error(self, message: str, **_: Any) -> None:
        self.lines.append(("error", message))

    def warning(self, message: str, **_: Any) -> None:
        self.lines.append(("warning", message))


def as_role(url: str, role: str) -> str:
    """``url`` logged in as ``role`` (trust on the plaintext server)."""
    return make_conninfo(url, user=role)


def claim(url: str, group: str, event: InboundEvent) -> list[InboundEvent]:
    """``claim_new`` of one event as the consumer role, committed."""
    with psycopg.connect(as_role(url, "oncepipe_consumer")) as conn, conn.cursor() as cursor:
        return claim_new(cursor, group, [event])


def an_event(offset: int) -> InboundEvent:
    """An inbound event for the inbox (the inbox needs only its id and coordinates)."""
    return InboundEvent(Nothing(), uuid.uuid4(), "t", 0, offset)


def watch(url: str) -> tuple[datetime | None, list[tuple[str, str]]]:
    """One look of a consumer's partition watcher, as the consumer role."""
    log = Captured()
    watcher = Maintainer(
        lambda: psycopg.connect(as_role(url, "oncepipe_consumer")),
        retention_days=14,
        interval_s=3600,
        log=log,
    )
    return watcher.check(), log.lines


def test_maintain_run_late_creates_today_first_and_consumers_resume(
    database_url: str,
) -> None:
    # The last pre-created partition is behind us: maintenance has not run for days.
    with psycopg.connect(database_url, autocommit=True) as conn:
        for partition in list_partitions(conn):
            conn.execute(f"ALTER TABLE oncepipe.inbox DETACH PARTITION oncepipe.{partition.name}")
            conn.execute(f"DROP TABLE oncepipe.{partition.name}")
    until, lines = watch(database_url)
    assert until is None
    assert [level for level, _ in lines] == ["error"]
    assert "oncepipe maintain" in lines[0][1]
    # A consumer's batch cannot insert its inbox rows: a retriable error, nothing written.
    with pytest.raises(DatabaseUnavailableError, match="oncepipe maintain"):
        claim(database_url, "g", an_event(0))

    late = subprocess.run(
        [ONCEPIPE, "maintain", "--json"],
        env={"PATH": "/usr/bin:/bin", "ONCEPIPE_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert late.returncode == 0, late.stderr
    assert '"late": true' in late.stdout
    today = datetime.now(UTC).date()
    assert f'"inbox_p{today:%Y%m%d}"' in late.stdout
    with psycopg.connect(database_url) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_inherits AS i"
            " JOIN pg_class AS c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'oncepipe.inbox'::regclass"
        ).fetchall()
    assert owners == [("oncepipe_owner",)]

    # Consumers resume on their next retry; the watcher is quiet for the coming week.
    assert len(claim(database_url, "g", an_event(1))) == 1
    until, lines = watch(database_url)
    assert until is not None
    assert until >= datetime.now(UTC) + timedelta(days=7)
    assert lines == []
    again = subprocess.run(
        [ONCEPIPE, "maintain", "--json"],
        env={"PATH": "/usr/bin:/bin", "ONCEPIPE_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert '"late": false' in again.stdout
    assert '"created": []' in again.stdout


def test_a_worker_role_cannot_create_a_partition(database_url: str) -> None:
    with (
        psycopg.connect(as_role(database_url, "oncepipe_consumer")) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("SELECT oncepipe.inbox_create_partition(current_date + 20)")


@pytest.fixture
def old_database(services: Services, admin_url: str, tmp_path: Path) -> Iterator[str]:
    """A database created by the migrations before the role layout (0001..0010)."""
    old = tmp_path / "sql"
    old.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.stem <= BEFORE_ROLES:
            shutil.copy(path, old / path.name)
    name = f"oncepipe_old_{uuid.uuid4().hex[:8]}"
    create_database(admin_url, name)
    url = make_conninfo(with_database(services.database_url, name))
    apply_migrations(url, source=old)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def test_migrate_upgrades_an_existing_database_keeping_its_rows(old_database: str) -> None:
    url = old_database
    with psycopg.connect(url) as conn:
        conn.execute(
            "SELECT oncepipe.enqueue('t', d::text, NULL, 'v'::bytea, '{}', '{}')"
            " FROM generate_series(1, 5) AS d"
        )
        conn.execute(
            "SELECT * FROM oncepipe.inbox_claim('g', ARRAY[gen_random_uuid(), gen_random_uuid()],"
            " ARRAY['t', 't'], ARRAY[0, 0], ARRAY[0::bigint, 1])"
        )
        conn.execute("INSERT INTO oncepipe.consumer_offsets VALUES ('g', 't', 0, 2)")
    applied = apply_migrations(url)
    assert "0014_roles" in applied
    with psycopg.connect(url) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM oncepipe.outbox), (SELECT count(*) FROM oncepipe.inbox),"
            " (SELECT next_offset FROM oncepipe.consumer_offsets)"
        ).fetchone()
        owner = conn.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'oncepipe'"
        ).fetchone()
    assert counts == (5, 2, 2)
    assert owner == ("oncepipe_owner",)
    # The roles work on the upgraded rows, and only within their grants.
    assert len(claim(url, "g", an_event(2))) == 1
    with psycopg.connect(as_role(url, "oncepipe_consumer")) as conn:
        conn.execute(
            "UPDATE oncepipe.consumer_offsets SET next_offset = 3 WHERE consumer_group = 'g'"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM oncepipe.outbox")
    with psycopg.connect(as_role(url, "oncepipe_relay")) as conn:
        rows = conn.execute("SELECT count(*) FROM oncepipe.outbox").fetchone()
    assert rows == (5,)
    # A second run applies nothing and grants again without error.
    assert apply_migrations(url) == []


def test_workers_of_the_old_version_keep_working_through_the_upgrade(old_database: str) -> None:
    url = old_database
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO oncepipe.consumer_offsets VALUES ('old', 't', 0, 0)")
    applied = 0
    failures: list[BaseException] = []
    progressed = threading.Condition()
    stopping = threading.Event()

    def old_worker() -> None:
        # A batch as the previous version writes it, logged in with its all-powerful role.
        nonlocal applied
        with psycopg.connect(url) as conn:
            while not stopping.is_set():
                try:
                    with conn.transaction():
                        conn.execute(
                            "SELECT * FROM oncepipe.inbox_claim('old', ARRAY[gen_random_uuid()],"
                            " ARRAY['t'], ARRAY[0], ARRAY[%s::bigint])",
                            (applied,),
                        )
                        conn.execute(
                            "UPDATE oncepipe.consumer_offsets SET next_offset = next_offset + 1"
                            " WHERE consumer_group = 'old'"
                        )
                except psycopg.errors.DeadlockDetected:
                    continue  # a session failure: the batch is retried
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    failures.append(exc)
                    return
                with progressed:
                    applied += 1
                    progressed.notify_all()

    thread = threading.Thread(target=old_worker, daemon=True)
    thread.start()
    try:
        with progressed:
            assert progressed.wait_for(lambda: applied >= 5 or bool(failures), timeout=60)
        assert "0014_roles" in apply_migrations(url)
        with progressed:
            after = applied
            assert progressed.wait_for(lambda: applied >= after + 5 or bool(failures), 60)
    finally:
        stopping.set()
        thread.join(timeout=60)
    assert failures == []
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM oncepipe.inbox WHERE consumer_group = 'old'),"
            " (SELECT next_offset FROM oncepipe.consumer_offsets WHERE consumer_group = 'old')"
        ).fetchone()
    assert row == (applied, applied)
