"""The schema store in PostgreSQL: producers register, consumers read versions they do not ship."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from schemas import ClickAction, ClickEvent, Codec, SchemaStore, UnknownFingerprintError
from schemas.avro_io import load_schema, write_body
from schemas.catalog import shipped_catalog

pytestmark = pytest.mark.integration

NEWEST: dict[str, Any] = json.loads(shipped_catalog()[-1].schema.text)
# A version this package does not ship: a newer producer added a field with a default.
V3 = load_schema(
    json.dumps(
        {
            **NEWEST,
            "fields": [
                *NEWEST["fields"],
                {"name": "position", "type": "int", "default": 0, "doc": "Rank in the list shown."},
            ],
        }
    )
)


def test_the_migration_creates_the_table_in_the_oncepipe_schema(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'oncepipe' AND table_name = 'schema_registry' "
            "ORDER BY ordinal_position"
        ).fetchall()
    assert columns == [
        ("fingerprint", "text"),
        ("event_type", "text"),
        ("schema_json", "text"),
        ("registered_at", "timestamp with time zone"),
    ]


def test_registering_the_shipped_schemas_is_idempotent(database_url: str) -> None:
    codec = Codec.load()
    store = SchemaStore(database_url)
    assert store.register(codec) == len(shipped_catalog())
    assert store.register(codec) == 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT fingerprint, event_type, schema_json FROM oncepipe.schema_registry"
        ).fetchall()
    assert {fp: (t, s) for fp, t, s in rows} == codec.writer_schemas()


def test_lookup_returns_the_registered_text_or_none(database_url: str) -> None:
    store = SchemaStore(database_url)
    store.register_schema(V3.fingerprint, "ClickEvent", V3.text)
    store.register_schema(V3.fingerprint, "ClickEvent", V3.text)  # again: a no-op
    assert store.lookup(V3.fingerprint) == V3.text
    assert store.lookup("0000000000000000") is None


def test_a_schema_is_refused_under_a_fingerprint_that_is_not_its_own(database_url: str) -> None:
    store = SchemaStore(database_url)
    with pytest.raises(ValueError, match="does not match the schema"):
        store.register_schema("0123456789abcdef", "ClickEvent", V3.text)
    assert store.lookup("0123456789abcdef") is None


def test_an_event_written_with_a_version_only_the_store_knows_is_decoded(
    database_url: str,
) -> None:
    # The newer producer: writes v3 and registered it at start-up.
    SchemaStore(database_url).register_schema(V3.fingerprint, "ClickEvent", V3.text)
    record: dict[str, Any] = {
        "event_id": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
        "user_id": "u-9",
        "item_id": "i-9",
        "action": "click",
        "occurred_at": datetime(2025, 7, 1, 8, 30, tzinfo=UTC),
        "session_id": "s-9",
        "context": None,
        "surface": "search",
        "position": 3,
    }
    value = V3.header + write_body(V3, record)

    # The older consumer: ships v1 and v2 only and finds v3 in the store.
    consumer = Codec.load(lookup=SchemaStore(database_url).lookup)
    assert V3.fingerprint not in consumer.writer_schemas()
    [event] = consumer.decode_batch([value])

    assert event == ClickEvent(
        event_id=uuid.UUID(record["event_id"]),
        user_id="u-9",
        item_id="i-9",
        action=ClickAction.CLICK,
        occurred_at=record["occurred_at"],
        session_id="s-9",
        surface="search",
    )


def test_a_fingerprint_in_neither_package_nor_store_is_unknown(database_url: str) -> None:
    consumer = Codec.load(lookup=SchemaStore(database_url).lookup)
    with pytest.raises(UnknownFingerprintError, match="nor in the schema store"):
        consumer.decode(V3.header + b"\x00")
