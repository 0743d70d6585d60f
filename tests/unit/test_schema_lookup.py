"""Writer schemas the package does not ship: fetched once through ``lookup``, then cached."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from schemas import (
    ClickAction,
    ClickEvent,
    Codec,
    IncompatibleSchemaError,
    SchemaError,
    SchemaStore,
    UnknownFingerprintError,
)
from schemas.avro_io import AvroSchema, load_schema, write_body
from schemas.catalog import shipped_catalog

SHIPPED_NEWEST = shipped_catalog()[-1].schema
V2: dict[str, Any] = json.loads(SHIPPED_NEWEST.text)
RECORD: dict[str, Any] = {
    "event_id": "3e0f8a9b-1c2d-4e5f-8a6b-7c8d9e0f1a2b",
    "user_id": "u-3",
    "item_id": "i-3",
    "action": "purchase",
    "occurred_at": datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC),
    "session_id": "s-3",
    "context": {"arm": "b"},
    "surface": "cart",
}


def next_version(*fields: dict[str, Any], drop: str | None = None) -> AvroSchema:
    document = json.loads(json.dumps(V2))
    document["fields"] = [f for f in document["fields"] if f["name"] != drop] + list(fields)
    return load_schema(json.dumps(document))


V3 = next_version({"name": "referrer", "type": ["null", "string"], "default": None})
V3_BROKEN = next_version({"name": "surface", "type": "int"}, drop="surface")


def message(schema: AvroSchema, **changes: Any) -> bytes:
    return schema.header + write_body(schema, {**RECORD, "referrer": "email", **changes})


class FakeStore:
    """A lookup that counts its calls."""

    def __init__(self, *schemas: AvroSchema, rows: dict[str, str] | None = None) -> None:
        self.rows = {s.fingerprint: s.text for s in schemas} | (rows or {})
        self.calls: list[str] = []

    def lookup(self, fingerprint: str) -> str | None:
        self.calls.append(fingerprint)
        return self.rows.get(fingerprint)


def test_a_newer_writer_from_the_store_is_read_into_the_newest_shipped_version() -> None:
    store = FakeStore(V3)
    codec = Codec.load(lookup=store.lookup)
    decoded = codec.decode(message(V3))
    assert decoded.fingerprint == V3.fingerprint
    assert "referrer" not in decoded.record
    assert codec.to_model(decoded) == ClickEvent(
        event_id=uuid.UUID(RECORD["event_id"]),
        user_id="u-3",
        item_id="i-3",
        action=ClickAction.PURCHASE,
        occurred_at=RECORD["occurred_at"],
        session_id="s-3",
        context={"arm": "b"},
        surface="cart",
    )


def test_a_fetched_schema_is_parsed_once_and_cached() -> None:
    store = FakeStore(V3)
    codec = Codec.load(lookup=store.lookup)
    results = codec.decode_batch([message(V3, user_id=f"u-{n}") for n in range(50)])
    codec.decode(message(V3))
    assert all(isinstance(r, ClickEvent) for r in results)
    assert store.calls == [V3.fingerprint]


def test_shipped_fingerprints_never_reach_the_store() -> None:
    store = FakeStore()
    codec = Codec.load(lookup=store.lookup)
    for version in shipped_catalog():
        codec.decode(message(version.schema))
    assert store.calls == []


def test_a_fingerprint_found_nowhere_is_unknown_and_asked_again_later() -> None:
    store = FakeStore()
    codec = Codec.load(lookup=store.lookup)
    with pytest.raises(UnknownFingerprintError, match="nor in the schema store"):
        codec.decode(message(V3))
    store.rows[V3.fingerprint] = V3.text  # the producer registers it meanwhile
    assert codec.decode(message(V3)).fingerprint == V3.fingerprint
    assert store.calls == [V3.fingerprint, V3.fingerprint]


def test_a_batch_asks_the_store_once_per_unknown_fingerprint() -> None:
    store = FakeStore()
    codec = Codec.load(lookup=store.lookup)
    results = codec.decode_batch([message(V3)] * 20)
    assert all(isinstance(r, UnknownFingerprintError) for r in results)
    assert store.calls == [V3.fingerprint]


def test_an_incompatible_writer_in_the_store_is_refused_and_the_verdict_kept() -> None:
    store = FakeStore(V3_BROKEN)
    codec = Codec.load(lookup=store.lookup)
    broken = message(V3_BROKEN, surface=7)
    for _ in range(2):
        with pytest.raises(
            IncompatibleSchemaError, match="surface: type changed from int to string"
        ):
            codec.decode(broken)
    assert store.calls == [V3_BROKEN.fingerprint]


def test_a_store_row_whose_text_has_another_fingerprint_is_refused() -> None:
    store = FakeStore(rows={V3.fingerprint: shipped_catalog()[0].schema.text})
    codec = Codec.load(lookup=store.lookup)
    with pytest.raises(IncompatibleSchemaError, match="the row is corrupt: delete it"):
        codec.decode(message(V3))


def test_a_store_row_that_is_not_a_schema_is_refused() -> None:
    store = FakeStore(rows={V3.fingerprint: "{not json"})
    codec = Codec.load(lookup=store.lookup)
    with pytest.raises(IncompatibleSchemaError, match="is unusable"):
        codec.decode(message(V3))


def test_a_writer_of_an_event_type_without_a_model_is_refused() -> None:
    other = load_schema(json.dumps({**V2, "name": "Purchase"}))
    codec = Codec.load(lookup=FakeStore(other).lookup)
    with pytest.raises(IncompatibleSchemaError, match="event type Purchase, which this consumer"):
        codec.decode(other.header + write_body(other, RECORD))


def test_without_a_store_an_unshipped_fingerprint_is_unknown() -> None:
    with pytest.raises(UnknownFingerprintError, match="no schema store configured"):
        Codec.load().decode(message(V3))


def test_a_store_outage_is_raised_not_dead_lettered() -> None:
    store = SchemaStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    codec = Codec.load(lookup=store.lookup)
    with pytest.raises(psycopg.OperationalError):
        codec.decode_batch([message(SHIPPED_NEWEST), message(V3)])
    assert not issubclass(psycopg.OperationalError, SchemaError)
