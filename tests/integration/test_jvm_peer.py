"""The JVM peer reads what oncepipe writes.

The converter (``bench/jvm/avro-single-object``, built by Maven) through a tiny Java main on
values of the Python codec, and the Debezium JDBC sink on Kafka Connect end to end: 100 click
events and 20 duplicate records into the peer comparison's table, one row per event, every
column as oncepipe's own handler stores it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable

import psycopg
import pytest

from bench.events import make_events
from bench.jvm_jars import JvmPeer, ensure_jvm_peer
from bench.peer import CREATE_TABLE, TABLE
from bench.peer_debezium import ConnectWorker, SinkFailedError, SinkRun
from oncepipe.kafka import Producer
from oncepipe.settings import Settings
from schemas import ClickEvent, Codec
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration

SCHEMAS = "schemas/avro"


@pytest.fixture(scope="module")
def jvm_peer() -> JvmPeer:
    """The converter built, the Debezium plugin and the worker's jars fetched (once)."""
    peer = ensure_jvm_peer()
    assert peer.ok, peer.error
    return peer


def _expected(event: ClickEvent) -> dict[str, object]:
    return {
        "event_id": str(event.event_id),
        "user_id": event.user_id,
        "item_id": event.item_id,
        "action": event.action.value,
        "occurred_at": int(event.occurred_at.timestamp() * 1000),
        "session_id": event.session_id,
        "context": event.context,
        "surface": event.surface,
    }


def test_the_converter_reads_the_python_codecs_values_of_every_version(jvm_peer: JvmPeer) -> None:
    codec = Codec.load()
    newest = codec.newest_fingerprint("ClickEvent")
    older = next(fp for fp, (kind, _) in codec.writer_schemas().items()
                 if kind == "ClickEvent" and fp != newest)  # fmt: skip
    events = make_events("click", 4)
    legacy = events[3].model_copy(update={"surface": "unknown"})  # version 1 has no surface
    values = [codec.encode(e).value for e in events[:3]] + [codec.encode_with(legacy, older).value]
    bad_magic = b"\x00\x01" + values[0][2:]
    jars = jvm_peer.worker
    assert jars is not None
    assert jvm_peer.converter is not None
    # Connect's API is `provided` for the converter: the worker's jars have it.
    api = [*sorted(jars.glob("connect-api-*.jar")), *sorted(jars.glob("kafka-clients-*.jar"))]
    classpath = ":".join([f"{jvm_peer.converter}/*", *map(str, api)])
    done = subprocess.run(
        ["java", "-cp", classpath, "dev.oncepipe.avro.connect.DecodeMain", SCHEMAS, "json"],
        input="".join(v.hex() + "\n" for v in [*values, bad_magic]),
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    decoded = [{**line, "context": json.loads(line["context"])} for line in lines[:4]]
    assert decoded == [_expected(e) for e in [*events[:3], legacy]]
    assert "not Avro single-object encoding" in lines[4]["error"]
    assert "0001" in lines[4]["error"]  # what it found instead


def _produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in values:
        producer.produce(topic, value, key)
    assert producer.flush(60) == 0


def test_the_debezium_sink_writes_one_row_per_event_through_duplicates(
    jvm_peer: JvmPeer,
    services: Services,
    settings: Settings,
    make_topic: Callable[..., str],
) -> None:
    codec = Codec.load()
    events = make_events("click", 100, seed=11)
    records = [codec.encode(e) for e in events]
    records += records[::5]  # 20 upstream retries: the same records again
    topic = make_topic("jvmpeer", partitions=2)
    _produce(services.bootstrap_servers, topic, [(r.key, r.value) for r in records])
    url = settings.database_url.get_secret_value()
    group = f"jvmpeer-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CREATE_TABLE)

        def count() -> int:
            row = conn.execute(
                f"SELECT count(*) FROM {TABLE} WHERE consumer_group = %s", (group,)
            ).fetchone()
            return 0 if row is None else int(row[0])

        # Two runs on one worker, as the suite does: a connector per run, created and deleted.
        with ConnectWorker(jvm_peer, services.bootstrap_servers) as worker:
            marks: list[str] = []
            run = SinkRun(services.bootstrap_servers, topic, group, url, TABLE,
                          records=120, rows=100, batch=50)  # fmt: skip
            summary = worker.run(run, marks.append, count)
            # A value that is not oncepipe's encoding stops the task, and the run says why.
            bad = make_topic("jvmpeer-bad", partitions=1)
            _produce(services.bootstrap_servers, bad, [(b"k", b"\x00\x01 not avro at all")])
            run = SinkRun(services.bootstrap_servers, bad, f"{group}-bad", url, TABLE,
                          records=1, rows=1)  # fmt: skip
            with pytest.raises(SinkFailedError) as refused:
                worker.run(run, marks.append, lambda: 0)
        stored = conn.execute(
            "SELECT event_id, user_id, item_id, action, occurred_at, session_id, surface,"
            f' context, topic, "offset" >= 0 FROM {TABLE} WHERE consumer_group = %s'
            " ORDER BY occurred_at",
            (group,),
        ).fetchall()
    assert marks == ["first", "last"]
    assert summary["events"] == 120
    assert summary["transactions"] >= 3  # puts of at most 50 records
    expected = [
        (e.event_id, e.user_id, e.item_id, e.action.value, e.occurred_at, e.session_id,
         e.surface, e.context, topic, True)
        for e in sorted(events, key=lambda e: e.occurred_at)
    ]  # fmt: skip
    assert stored == expected
    assert f"topic {bad}: not Avro single-object encoding" in str(refused.value)
