"""Quix Streams' PostgreSQL sink writing the peer comparison's raw rows; one run.

Runs inside ``bench/.venv-quix`` (``quixstreams[postgresql]`` and ``fastavro``) and imports
nothing from oncepipe: ``bench/quix_venv.py`` runs it as a script. A Quix ``Application``
with a fresh consumer group reads ``--topic`` from the beginning (values as bytes); each
value, Avro single-object encoded, is checked (magic ``C3 01`` and the writer schema's
fingerprint) and decoded with fastavro into the columns of ``public.bench_peer_rows``, plus
``topic``, ``partition`` and ``offset`` from the message context; ``PostgreSQLSink``
(``schema_auto_update=False``, ``include_metadata=False``, ``on_conflict_do_nothing=True``)
writes them at every checkpoint. The run stops after ``--events`` messages
(``Application.run(count=...)``), whose last checkpoint flushes the sink.

Same protocol on stdout as ``python -m bench.peer_oncepipe``: ``first`` when the first
message is in hand, ``last`` when the sink's transaction holding the last row committed, then
one JSON line with ``events``, ``wall_s`` and ``cpu_s`` between the two, ``transactions``
(the sink's writes, one transaction per topic partition and checkpoint) and ``quixstreams``
(its version). The PostgreSQL password, if any, comes from ``PGPASSWORD``.

The third-party modules are imported with ``importlib`` so that type checkers of the main
virtualenv, where they are absent, see them as untyped.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MAGIC = b"\xc3\x01"


class Marks:
    """Wall and CPU clock at the first message in hand and at the last row committed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.rows = 0
        self.transactions = 0
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def start(self) -> None:
        """A message is in hand; only the first one counts."""
        if self.first is None:
            self.first = (time.perf_counter(), time.process_time())
            print("first", flush=True)

    def committed(self, rows: int) -> None:
        """The sink committed ``rows`` more rows."""
        self.rows += rows
        self.transactions += 1
        if self.last is None and self.rows >= self.total:
            self.last = (time.perf_counter(), time.process_time())
            print("last", flush=True)

    def summary(self) -> dict[str, float]:
        """The run as plain data (after ``last``)."""
        if self.first is None or self.last is None:
            raise RuntimeError(f"the run ended after {self.rows} of {self.total} rows")
        return {
            "events": self.rows,
            "wall_s": self.last[0] - self.first[0],
            "cpu_s": self.last[1] - self.first[1],
            "transactions": self.transactions,
        }


def _decoder(args: argparse.Namespace, marks: Marks) -> Any:
    fastavro = importlib.import_module("fastavro")
    quixstreams = importlib.import_module("quixstreams")
    schema = fastavro.parse_schema(json.loads(Path(args.schema).read_text()))
    fingerprint = bytes.fromhex(args.fingerprint)
    reader = fastavro.schemaless_reader
    context = quixstreams.message_context
    group = args.group

    def decode(value: bytes) -> dict[str, Any]:
        marks.start()
        if value[:2] != MAGIC or value[2:10] != fingerprint:
            raise ValueError(f"not a ClickEvent of the expected schema: {value[:10].hex()}")
        body = reader(io.BytesIO(value[10:]), schema, schema)
        where = context()
        return {
            "consumer_group": group,
            "event_id": str(body["event_id"]),  # a uuid.UUID, which psycopg2 cannot adapt
            "user_id": body["user_id"],
            "item_id": body["item_id"],
            "action": body["action"],
            "occurred_at": body["occurred_at"],
            "session_id": body["session_id"],
            "surface": body["surface"],
            "context": body["context"],
            "topic": where.topic,
            "partition": where.partition,
            "offset": where.offset,
        }

    return decode


def _sink(args: argparse.Namespace, marks: Marks) -> Any:
    postgresql = importlib.import_module("quixstreams.sinks.community.postgresql")
    sink = postgresql.PostgreSQLSink(
        host=args.pg_host,
        port=args.pg_port,
        dbname=args.pg_database,
        user=args.pg_user,
        password=os.environ.get("PGPASSWORD", ""),
        table_name=args.table,
        schema_name=args.schema_name,
        schema_auto_update=False,
        include_metadata=False,
        on_conflict_do_nothing=True,
    )
    write = sink.write

    def counted_write(batch: Any) -> None:
        write(batch)  # one transaction per topic partition, committed on return
        marks.committed(batch.size)

    sink.write = counted_write
    return sink


def _broker_address(args: argparse.Namespace) -> Any:
    """The bootstrap servers, or a ConnectionConfig with the security keys of the file."""
    if not args.kafka_config:
        return args.bootstrap
    security = json.loads(Path(args.kafka_config).read_text(encoding="utf-8"))
    if not security:
        return args.bootstrap
    config = importlib.import_module("quixstreams.kafka.configuration").ConnectionConfig
    return config.from_librdkafka_dict({"bootstrap.servers": args.bootstrap, **security})


def main(argv: list[str] | None = None) -> int:
    """One run; exit 0 once every row is committed."""
    parser = argparse.ArgumentParser(prog="peer_quix_app.py")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument(
        "--kafka-config", help="JSON file of librdkafka security keys (TLS, SASL), if any"
    )
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--schema", required=True, help="the writer schema (.avsc JSON)")
    parser.add_argument("--fingerprint", required=True, help="its CRC-64-AVRO, hex")
    parser.add_argument("--commit-every", type=int, default=0, help="0: Quix's default")
    parser.add_argument("--pg-host", required=True)
    parser.add_argument("--pg-port", type=int, required=True)
    parser.add_argument("--pg-database", required=True)
    parser.add_argument("--pg-user", required=True)
    parser.add_argument("--table", default="bench_peer_rows")
    parser.add_argument("--schema-name", default="public")
    args = parser.parse_args(argv)
    quixstreams = importlib.import_module("quixstreams")
    marks = Marks(args.events)
    with tempfile.TemporaryDirectory(prefix="bench-quix-state-") as state_dir:
        app = quixstreams.Application(
            broker_address=_broker_address(args),
            consumer_group=args.group,
            auto_offset_reset="earliest",
            commit_every=args.commit_every,
            state_dir=state_dir,
            loglevel="WARNING",
        )
        topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
        frame = app.dataframe(topic).apply(_decoder(args, marks))
        frame.sink(_sink(args, marks))
        app.run(count=args.events, collect=False)
    summary: dict[str, Any] = dict(marks.summary())
    summary["quixstreams"] = quixstreams.__version__
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
