"""Every oncepipe session runs READ COMMITTED, whatever the role or database default says."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from oncepipe.db import connect, create_pool
from oncepipe.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def repeatable_read_default(settings: Settings, admin_url: str) -> Settings:
    """The test database with REPEATABLE READ as its default isolation level for new sessions."""
    dbname = conninfo_to_dict(settings.database_url.get_secret_value())["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            f"ALTER DATABASE \"{dbname}\" SET default_transaction_isolation = 'repeatable read'"
        )
    with psycopg.connect(settings.database_url.get_secret_value()) as plain:
        shown = plain.execute("SHOW transaction_isolation").fetchone()
    assert shown == ("repeatable read",)  # the default really is changed for other clients
    return settings


def test_connect_pins_read_committed_over_a_database_default(
    repeatable_read_default: Settings,
) -> None:
    with connect(repeatable_read_default) as conn:
        assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)
    with connect(repeatable_read_default, autocommit=True) as conn:
        assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)


def test_pooled_connections_pin_read_committed_too(repeatable_read_default: Settings) -> None:
    with create_pool(repeatable_read_default) as pool, pool.connection() as conn:
        assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)
