"""The ingest's transactions run on its own PostgreSQL role, oncepipe_ingest (migration 0014)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ingest.store import Accepted, Replayed, accept, delete_expired, enqueue_only
from oncepipe.settings import Settings
from schemas import ClickEvent, Codec, SchemaStore
from tests.fixtures.ingest import click

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest_role_pool(settings: Settings) -> Iterator[ConnectionPool[psycopg.Connection[Any]]]:
    """Connections acting as oncepipe_ingest (SET ROLE: only its grants apply)."""

    def as_ingest(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SET ROLE oncepipe_ingest")
        conn.commit()

    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        settings.database_url.get_secret_value(),
        min_size=1,
        max_size=2,
        configure=as_ingest,
        open=True,
    )
    try:
        yield pool
    finally:
        pool.close()


def test_the_ingest_role_can_do_all_the_server_does(
    ingest_role_pool: ConnectionPool[psycopg.Connection[Any]],
) -> None:
    codec = Codec.load()
    event = ClickEvent.model_validate(
        {**click(), "event_id": "6f1c3a0e-94a7-4d55-9d0e-1b0c9a3e2d71"}
    )

    def run() -> object:
        return accept(ingest_role_pool, codec=codec, client="web", key="k", digest=b"d",
                      build=lambda: [event], respond=lambda _events: b"{}", key_ttl_s=3600,
                      timeout_s=10)  # fmt: skip

    assert isinstance(run(), Accepted)
    assert isinstance(run(), Replayed)
    enqueue_only(ingest_role_pool, codec=codec, events=[event], timeout_s=10)
    assert delete_expired(ingest_role_pool, key_ttl_s=0.0) == 1


def test_the_ingest_role_only_reads_the_schema_store(settings: Settings) -> None:
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE oncepipe_ingest")
        assert conn.execute("SELECT count(*) FROM oncepipe.schema_registry").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO oncepipe.schema_registry DEFAULT VALUES")
    assert SchemaStore(url).register(Codec.load()) >= 0  # the owner's URL may
