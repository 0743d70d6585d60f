"""The outbox carries headers as bytes and null values: what goes in is what the relay sends.

Migration 0008 moved headers from jsonb (no NUL, no bytes) to parallel ``bytea[]`` columns and
made the value nullable; the original ``oncepipe.enqueue(..., headers jsonb)`` keeps working.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import psycopg
import psycopg2
import pytest

from oncepipe.migrations import MIGRATIONS_DIR, apply_migrations
from oncepipe.settings import Settings
from producers.outbox import enqueue_record
from tests.fixtures.hostile import read_raw
from tests.fixtures.relay import RelayThread, wait_drained

pytestmark = pytest.mark.integration

HOSTILE = [("nul", b"a\x00b"), ("bad", b"\xff\xfe\x80"), ("none", None), ("empty", b""), ("s", "é")]
SENT = tuple((name, value.encode() if isinstance(value, str) else value) for name, value in HOSTILE)


def test_header_bytes_nulls_and_tombstones_leave_the_outbox_as_they_came(
    settings: Settings, make_topic: Callable[..., str], relay_thread: Callable[..., RelayThread]
) -> None:
    topic = make_topic("outbox.bytes", 1)
    url = settings.database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        enqueue_record(conn, topic, "p3", key=b"k1", value=b"v\x00", headers=HOSTILE)
        enqueue_record(conn, topic, "p3-tomb", key=b"k2", value=None, headers=[])
    legacy = psycopg2.connect(url)
    try:
        with legacy:  # psycopg2: commit on success
            enqueue_record(legacy, topic, "p2", key=None, value=None, headers=HOSTILE)
    finally:
        legacy.close()
    relay_thread()
    wait_drained(settings)
    records = read_raw(settings.kafka_bootstrap_servers, topic, expected=3)
    assert [(r.key, r.value, r.headers) for r in records] == [
        (b"k1", b"v\x00", SENT),
        (b"k2", None, ()),
        (None, None, SENT),
    ]


def test_the_original_jsonb_enqueue_signature_still_publishes_its_headers(
    settings: Settings, make_topic: Callable[..., str], relay_thread: Callable[..., RelayThread]
) -> None:
    topic = make_topic("outbox.jsonb", 1)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute(
            "SELECT oncepipe.enqueue(%s, 'id-1', 'k'::bytea, 'v'::bytea,"
            """ '[["event_id", "id-1"], ["none", null], ["é", "ü"]]'::jsonb)""",
            (topic,),
        )
        conn.execute("SELECT oncepipe.enqueue(%s, 'id-2', 'k'::bytea, 'w'::bytea)", (topic,))
    relay_thread()
    wait_drained(settings)
    records = read_raw(settings.kafka_bootstrap_servers, topic, expected=2)
    assert [(r.value, r.headers) for r in records] == [
        (b"v", (("event_id", b"id-1"), ("none", None), ("é", "ü".encode()))),
        (b"w", ()),
    ]


def test_migration_0008_moves_existing_jsonb_headers_into_bytes(
    admin_url: str, settings: Settings, tmp_path: Path
) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for migration in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if migration.name < "0008":
            shutil.copy(migration, before)
    name = f"mig0008_{tmp_path.name[-20:].lower().replace('-', '_')}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = settings.database_url.get_secret_value().rsplit("/", 1)[0] + f"/{name}"
    try:
        apply_migrations(url, before)
        with psycopg.connect(url) as conn:
            conn.execute(
                "SELECT oncepipe.enqueue('t', 'a', NULL, 'v'::bytea,"
                """ '[["event_id", "a"], ["n", null], ["e", ""]]'::jsonb)"""
            )
            conn.execute("SELECT oncepipe.enqueue('t', 'b', NULL, 'w'::bytea)")
        shutil.copy(MIGRATIONS_DIR / "0008_outbox_bytes.sql", before)
        assert apply_migrations(url, before) == ["0008_outbox_bytes"]
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT dedupe_id, header_names, header_values FROM oncepipe.outbox ORDER BY id"
            ).fetchall()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert rows == [("a", [b"event_id", b"n", b"e"], [b"a", None, b""]), ("b", [], [])]
