"""The native PostgreSQL keeps data across restarts; migrations are recorded and forward-only."""

from __future__ import annotations

import psycopg
import pytest

from oncepipe.db import connect
from oncepipe.errors import DatabaseUnavailableError
from oncepipe.migrations import apply_migrations, pending_migrations
from oncepipe.settings import Settings
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration


def test_migrations_are_recorded_and_not_applied_twice(database_url: str) -> None:
    assert pending_migrations(database_url) == []
    assert apply_migrations(database_url) == []
    with psycopg.connect(database_url) as conn:
        applied = [row[0] for row in conn.execute("SELECT migration_id FROM _yoyo_migration")]
        schema = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'oncepipe'").fetchone()
    assert "0001_oncepipe_schema" in applied
    assert schema == (1,)


def test_worker_sessions_cannot_idle_in_a_transaction_forever(settings: Settings) -> None:
    with connect(settings, "oncepipe-test") as conn:
        timeout = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        name = conn.execute("SHOW application_name").fetchone()
    assert timeout == ("1min",)
    assert name == ("oncepipe-test",)


def test_unreachable_database_is_a_clear_retriable_error() -> None:
    bad = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailableError, match="ONCEPIPE_DATABASE_URL"):
        connect(bad)


@pytest.mark.faults
def test_postgres_restart_keeps_committed_data(services: Services, database_url: str) -> None:
    _, postgres = services.require_native()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survivors (id int PRIMARY KEY)")
        conn.execute("INSERT INTO survivors SELECT generate_series(1, 1000)")
    postgres.restart()
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM survivors").fetchone()
    assert count == (1000,)
