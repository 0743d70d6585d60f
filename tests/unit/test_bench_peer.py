"""The peer suite's data and the Debezium sink's settings (no services)."""

from __future__ import annotations

import uuid

from bench.events import EventSet
from bench.peer_debezium import SinkRun, connector_config
from bench.peer_suite import with_duplicates
from schemas import Codec


def test_a_fifth_of_the_records_come_again_each_after_its_original() -> None:
    data = EventSet.build("click", 500, Codec.load())
    doubled = with_duplicates(data)
    assert len(doubled.encoded) == 600
    assert len({e.event_id for e in doubled.events}) == 500
    seen: set[bytes] = set()
    for encoded, event in zip(doubled.encoded, doubled.events, strict=True):
        assert encoded.value == data.encoded[data.events.index(event)].value
        seen.add(encoded.value)
    assert len(seen) == 500
    first_seen: dict[uuid.UUID, int] = {}
    for n, event in enumerate(doubled.events):
        first_seen.setdefault(event.event_id, n)
    originals = {e.event_id: n for n, e in enumerate(data.events)}
    assert sorted(first_seen, key=first_seen.__getitem__) == sorted(
        originals, key=originals.__getitem__
    )


def test_the_sink_upserts_by_group_and_event_id_into_the_peer_table() -> None:
    run = SinkRun("127.0.0.1:9092", "clicks", "g1", "postgresql://u:p%40ss@db.local:6543/bench",
                  "public.bench_peer_rows", records=12, rows=10, batch=100)  # fmt: skip
    config = connector_config(run)
    assert config["connection.url"] == "jdbc:postgresql://db.local:6543/bench"
    assert (config["connection.username"], config["connection.password"]) == ("u", "p@ss")
    assert config["insert.mode"] == "upsert"
    assert config["primary.key.fields"] == "consumer_group,event_id"
    assert config["collection.name.format"] == "public.bench_peer_rows"
    assert config["batch.size"] == "100"
    assert config["transforms.where.static.value"] == "g1"
    assert config["value.converter.map.format"] == "json"
