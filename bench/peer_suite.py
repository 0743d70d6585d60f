"""The peer comparison: Quix Streams' and Debezium's sinks against oncepipe, same raw rows.

One topic (6 partitions) is filled once per event size, with 20% duplicate records (the same
records sent again, as upstream retries do). Every run is a child process that reads the whole
topic from the start as a fresh consumer group and writes one row per event into
``public.bench_peer_rows`` (emptied before each run, with the inbox and the offsets):

- ``Quix PostgreSQLSink``: ``bench/peer_quix_app.py`` in ``bench/.venv-quix``, checkpointing
  every 500 messages (oncepipe's batch size: the baseline), and again with Quix's default
  checkpoints (every 5 s), under which a run here drains the topic in about one checkpoint;
- ``Debezium JDBC sink``: a Kafka Connect standalone worker kept for the case's runs (one
  connector per run, created and deleted over REST; ``bench/peer_debezium.py``) with
  oncepipe's Avro single-object converter (``bench/jvm/avro-single-object``), upserting by
  ``(consumer_group, event_id)``, one transaction per put of at most 500 records;
- ``oncepipe``: ``python -m bench.peer_oncepipe``, ``ConsumerRuntime`` with the handler
  ``bench.peer:raw_rows`` (inbox, one INSERT, offsets compare-and-set, COMMIT; batch 500;
  parameters in binary format, as in oncepipe's own handlers).

Both children report the same two marks (first message in hand, last row committed) and
their own wall and CPU time between them; the PostgreSQL and broker CPU are read from
``/proc`` when each mark arrives (the JVM's own CPU is Debezium's client CPU). events/s counts
records read, duplicates included. After every run the table must hold exactly one row per
distinct event. When a peer cannot be installed or run here, the suite says so in its results
and reports the others: it never makes up a peer's figures.

Public names: ``run_peer``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from bench.env import BenchEnv
from bench.events import EventSet
from bench.jvm_jars import JvmPeer, ensure_jvm_peer
from bench.measure import Sample
from bench.peer import CREATE_TABLE, TABLE
from bench.peer_debezium import ConnectWorker, SinkFailedError, SinkRun
from bench.quix_venv import APP, QuixEnv, ensure_quix
from bench.raw import Producer, raw_config, raw_send
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu
from infra.workers import Supervisor
from oncepipe.kafka import security_config
from schemas import Codec

__all__ = ["run_peer"]

PARTITIONS = 6
BATCH = 500
# Full runs also sweep the batch size on click events (the plot); quick runs keep 500 only.
SWEEP = (100, 500, 2000)
RUN_TIMEOUT_S = 900
ROOT = Path(__file__).resolve().parent.parent
QUIX_BATCH = "Quix PostgreSQLSink, checkpoint every batch (baseline)"
QUIX = "Quix PostgreSQLSink, default checkpoints (every 5 s)"
ONCEPIPE = "oncepipe consumer, raw_rows handler (exactly-once)"
DEBEZIUM = "Debezium JDBC sink on Kafka Connect, upsert (at-least-once)"
DUPLICATES = 0.2
RESET = f"TRUNCATE {TABLE}, oncepipe.inbox, oncepipe.consumer_offsets"


class ChildFailedError(RuntimeError):
    """A run's child process did not finish its run."""


class PeerFailedError(ChildFailedError):
    """The Quix app did not finish its run."""


class JvmPeerFailedError(ChildFailedError):
    """The Debezium sink did not finish its run."""


def with_duplicates(data: EventSet, share: float = DUPLICATES, seed: int = 3) -> EventSet:
    """``data`` plus ``share`` of its records sent again, each a little after its original."""
    rng = random.Random(seed)
    count = len(data.encoded)
    order = [(float(n), n) for n in range(count)]
    order += [(n + rng.uniform(1, 300), n) for n in rng.sample(range(count), int(count * share))]
    picks = [n for _, n in sorted(order)]
    return EventSet(
        data.kind,
        [data.events[n] for n in picks],
        [data.encoded[n] for n in picks],
        [data.headers[n] for n in picks],
    )


def _child(cmd: list[str], env: dict[str, str], cpu: ServiceCpu, payload: int) -> Sample:
    """Run one child, snapshot the servers' CPU at its marks, return its timed span."""
    snaps: dict[str, dict[str, float]] = {}
    summary: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        processes = Supervisor(env, cwd=ROOT)
        child = processes.start("run", cmd, log=Path(tmp) / "stderr.log", stdout_pipe=True)
        watchdog = threading.Timer(RUN_TIMEOUT_S, child.kill)
        watchdog.start()
        try:
            for raw in child.output_lines():
                line = raw.strip()
                if line in ("first", "last"):
                    snaps[line] = cpu.snapshot()
                elif line.startswith("{"):
                    summary = json.loads(line)
            code = child.wait()
        finally:
            watchdog.cancel()
            processes.kill_all()
        if code != 0 or summary is None or len(snaps) != 2:
            tail = " ".join(child.text().split())[-1200:]
            name = cmd[2] if cmd[1] == "-m" else Path(cmd[1]).name
            raise ChildFailedError(f"{name} exited {code}: {tail}")
    first, last = snaps["first"], snaps["last"]
    server = {name: last[name] - value for name, value in first.items() if name in last}
    extra = {k: float(v) for k, v in summary.items() if k not in ("events", "wall_s", "cpu_s")
             and isinstance(v, int | float)}  # fmt: skip
    return Sample(
        int(summary["events"]), summary["wall_s"], summary["cpu_s"], payload, server, extra
    )


class Runs:
    """Everything the runs of one event size share: topic, data, databases, children."""

    def __init__(
        self,
        env: BenchEnv,
        topic: str,
        data: EventSet,
        peers: tuple[QuixEnv, JvmPeer],
        kafka_config: Path,
        *,
        batch: int = BATCH,
        quick: bool = False,
    ) -> None:
        self.env = env
        self.batch = batch
        self.quick = quick
        self.kind = data.kind
        self.kafka_config = kafka_config
        self.topic = topic
        self.total = len(data.encoded)
        self.distinct = len({e.event_id for e in data.events})
        self.payload = data.payload_bytes
        self.median_bytes = data.median_bytes
        self.quix, self.jvm = peers
        self._worker: ConnectWorker | None = None
        self.cpu = ServiceCpu()
        self.base_env = {**os.environ, "ONCEPIPE_DATABASE_URL": env.database_url}

    def _reset(self) -> None:
        with self.env.connect(autocommit=True) as conn:
            conn.execute(RESET)

    def _check(self, group: str) -> None:
        with self.env.connect(autocommit=True) as conn:
            row = conn.execute(
                f"SELECT count(*), count(DISTINCT event_id) FROM {TABLE} WHERE consumer_group = %s",
                (group,),
            ).fetchone()
        if row is None or row[0] != self.distinct or row[1] != self.distinct:
            raise ChildFailedError(f"{group}: rows {row} in {TABLE}, expected {self.distinct}")

    def oncepipe(self, handler: str) -> Sample:
        """One run of the oncepipe consumer with ``handler``."""
        self._reset()
        group = f"bench-peer-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "bench.peer_oncepipe", "--topic", self.topic,
               "--group", group, "--events", str(self.total),
               "--batch-size", str(self.batch), "--handler", handler]  # fmt: skip
        sample = _child(cmd, self.base_env, self.cpu, self.payload)
        self._check(group)
        return sample

    def quix_run(self, schema: Path, fingerprint: str, commit_every: int) -> Sample:
        """One run of the Quix app (``commit_every`` 0: Quix's default checkpoints)."""
        self._reset()
        group = f"bench-peer-{uuid.uuid4().hex[:8]}"
        db = conninfo_to_dict(self.env.database_url)
        env = dict(self.base_env)
        if db.get("password"):
            env["PGPASSWORD"] = str(db["password"])
        cmd = [str(self.quix.python), str(APP),
               "--bootstrap", self.env.settings.kafka_bootstrap_servers, "--topic", self.topic,
               "--kafka-config", str(self.kafka_config),
               "--group", group, "--events", str(self.total), "--schema", str(schema),
               "--fingerprint", fingerprint, "--commit-every", str(commit_every),
               "--pg-host", str(db.get("host") or "localhost"),
               "--pg-port", str(db.get("port") or 5432),
               "--pg-database", str(db["dbname"]), "--pg-user", str(db.get("user") or ""),
               "--table", TABLE.split(".")[1], "--schema-name", TABLE.split(".")[0]]  # fmt: skip
        try:
            sample = _child(cmd, env, self.cpu, self.payload)
            self._check(group)
        except ChildFailedError as exc:
            raise PeerFailedError(str(exc)) from exc
        return sample

    def close(self) -> None:
        """Stop the Connect worker, if one was started."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def debezium(self) -> Sample:
        """One run of the Debezium JDBC sink, on the case's Connect worker (started once)."""
        self._reset()
        group = f"bench-peer-{uuid.uuid4().hex[:8]}"
        snaps: dict[str, dict[str, float]] = {}
        settings = self.env.settings
        run = SinkRun(settings.kafka_bootstrap_servers, self.topic, group, self.env.database_url,
                      TABLE, records=self.total, rows=self.distinct, batch=self.batch)  # fmt: skip
        query = f"SELECT count(*) FROM {TABLE} WHERE consumer_group = %s"
        try:
            with self.env.connect(autocommit=True) as conn:

                def count() -> int:
                    row = conn.execute(query, (group,)).fetchone()
                    return 0 if row is None else int(row[0])

                def mark(name: str) -> None:
                    snaps[name] = self.cpu.snapshot()

                if self._worker is None:
                    self._worker = ConnectWorker(self.jvm, settings.kafka_bootstrap_servers)
                summary = self._worker.run(run, mark, count)
            self._check(group)
        except (SinkFailedError, ChildFailedError) as exc:
            self.close()
            raise JvmPeerFailedError(str(exc)) from exc
        first, last = snaps["first"], snaps["last"]
        server = {name: last[name] - value for name, value in first.items() if name in last}
        return Sample(
            int(summary["events"]), summary["wall_s"], summary["cpu_s"], self.payload, server,
            {"transactions": float(summary["transactions"])},
        )  # fmt: skip


def _variants(runs: Runs, schema: Path, fingerprint: str) -> list[Variant]:
    def quix(commit_every: int) -> Callable[[], Sample]:
        return lambda: runs.quix_run(schema, fingerprint, commit_every)

    variants = []
    batch = runs.batch
    if runs.quix.ok:
        variants.append(
            Variant(QUIX_BATCH, f"quixstreams Application + PostgreSQLSink, commit_every={batch}",
                    quix(batch)),
        )  # fmt: skip
        if batch == BATCH:
            variants.append(
                Variant(QUIX, "the same with Quix's default commit_interval=5.0", quix(0))
            )
    # Quick runs: Debezium on click events only (its worker's start costs about a minute here).
    if runs.jvm.ok and not (runs.quick and runs.kind != "click"):
        variants.append(
            Variant(DEBEZIUM, "Connect standalone worker + Debezium JDBC sink 3.3.1, insert.mode="
                    f"upsert, batch.size={batch}; oncepipe's Avro single-object converter",
                    runs.debezium),
        )  # fmt: skip
    variants += [
        Variant(
            ONCEPIPE,
            f"ConsumerRuntime + bench.peer:raw_rows: inbox, INSERT, offsets CAS; batch {batch}",
            lambda: runs.oncepipe("bench.peer:raw_rows"),
        ),
    ]
    return variants


def _notes(quix: QuixEnv, jvm: JvmPeer) -> list[str]:
    notes = [
        f"Every topic holds {DUPLICATES:.0%} duplicate records (the same records again); "
        "events/s counts records read, and every side must end with one row per distinct event."
    ]
    if not quix.ok:
        notes.append(f"No Quix Streams figures: {quix.error}.")
    else:
        notes.append(
            f"Quix Streams {quix.version} in bench/.venv-quix (PostgreSQLSink with "
            "schema_auto_update=False, include_metadata=False, on_conflict_do_nothing=True; "
            "values decoded with fastavro, no model validation); oncepipe decodes with "
            "Codec.decode_batch (fastavro + pydantic validation). Timed from the first message "
            "in hand to the commit of the last row, every event included."
        )
    if not jvm.ok:
        notes.append(f"No Debezium figures: {jvm.error}.")
    else:
        notes.append(
            "Debezium JDBC sink 3.3.1.Final on one Kafka Connect 4.4.0 standalone worker (one "
            "JVM kept for a case's runs, a connector with one task per run, heap 256-768 MB), "
            "values through oncepipe's AvroSingleObjectConverter "
            "(Apache Avro's BinaryMessageDecoder, maps as JSON for the jsonb column); client CPU "
            "is the JVM's (every thread, from /proc), from the first put to the commit of the "
            "last row."
        )
    return notes


def run_peer(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Quix's sink against oncepipe, same raw rows, click and 2 KB events."""
    result = SuiteResult("peer", quick=quick)
    quix = ensure_quix()
    jvm = ensure_jvm_peer()
    result.notes += _notes(quix, jvm)
    codec = Codec.load()
    fingerprint = codec.newest_fingerprint("ClickEvent")
    with env.connect(autocommit=True) as conn:
        conn.execute(CREATE_TABLE)
    # Long enough for Quix's default 5 s checkpoints to happen more than once per run.
    plan = [
        ("click", 20_000 if quick else 150_000, (BATCH,) if quick else SWEEP),
        ("click-2k", 10_000 if quick else 50_000, (BATCH,)),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        schema = Path(tmp) / "click_event.avsc"
        schema.write_text(codec.writer_schemas()[fingerprint][1])
        # The Quix app imports nothing of oncepipe: it reads the librdkafka security keys
        # (secrets too) from this file, in a folder only this user reads, never from argv.
        kafka_config = Path(tmp) / "kafka-security.json"
        kafka_config.touch(mode=0o600)
        kafka_config.write_text(json.dumps(security_config(env.settings)))
        for kind, total, batches in plan:
            data = with_duplicates(EventSet.build(kind, total, codec))
            with env.topic("peer", PARTITIONS) as topic:
                raw_send(Producer(raw_config(env, idempotent=True)), topic, data)
                for batch in batches:
                    shared = Runs(
                        env, topic, data, (quix, jvm), kafka_config, batch=batch, quick=quick
                    )
                    try:
                        quix, jvm = _case(result, shared, (schema, fingerprint), kind, runs)
                    finally:
                        shared.close()
    return result


def _case(
    result: SuiteResult, shared: Runs, writer: tuple[Path, str], kind: str, runs: int
) -> tuple[QuixEnv, JvmPeer]:
    """Run every variant of one case; a peer that fails is left out from then on, with a note."""
    schema, fingerprint = writer
    while True:
        variants = _variants(shared, schema, fingerprint)
        try:
            samples = interleave(runs, variants)
            break
        except PeerFailedError as exc:
            result.notes.append(f"{kind}: a Quix run failed, no Quix figures: {exc}")
            shared.quix = QuixEnv(shared.quix.python, error=str(exc))
        except JvmPeerFailedError as exc:
            result.notes.append(f"{kind}: a Debezium run failed, no Debezium figures: {exc}")
            shared.jvm = JvmPeer(error=str(exc))
    result.add_case(
        kind if shared.batch == BATCH else f"{kind}, batch {shared.batch}",
        variants,
        samples,
        baseline=variants[0].name,
        params={"events": shared.total, "distinct": shared.distinct, "batch": shared.batch,
                "event_bytes": shared.median_bytes, "partitions": PARTITIONS},
    )  # fmt: skip
    return shared.quix, shared.jvm
