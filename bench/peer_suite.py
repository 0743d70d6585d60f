"""The peer comparison: Quix Streams' PostgreSQL sink against oncepipe, same raw rows.

One topic (6 partitions) is filled once per event size. Every run is a child process that
reads the whole topic from the start as a fresh consumer group and writes one row per event
into ``public.bench_peer_rows`` (emptied before each run, with the inbox and the offsets):

- ``Quix PostgreSQLSink``: ``bench/peer_quix_app.py`` in ``bench/.venv-quix``, checkpointing
  every 500 messages (oncepipe's batch size: the baseline), and again with Quix's default
  checkpoints (every 5 s), under which a run here drains the topic in about one checkpoint;
- ``oncepipe``: ``python -m bench.peer_oncepipe``, ``ConsumerRuntime`` with the handler
  ``bench.peer:raw_rows`` (inbox, one INSERT, offsets compare-and-set, COMMIT; batch 500;
  parameters in binary format, as in oncepipe's own handlers).

Both children report the same two marks (first message in hand, last row committed) and
their own wall and CPU time between them; the PostgreSQL and broker CPU are read from
``/proc`` when each mark arrives. After every run the table must hold exactly one row per
event. When Quix Streams cannot be installed or run here, the suite says so in its results
and reports the oncepipe side alone: it never makes up the peer's figures.

Public names: ``run_peer``.
"""

from __future__ import annotations

import json
import os
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
from bench.measure import Sample
from bench.peer import CREATE_TABLE, TABLE
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
RUN_TIMEOUT_S = 900
ROOT = Path(__file__).resolve().parent.parent
QUIX_500 = "Quix PostgreSQLSink, checkpoint every 500 messages (baseline)"
QUIX = "Quix PostgreSQLSink, default checkpoints (every 5 s)"
ONCEPIPE = "oncepipe consumer, raw_rows handler (exactly-once)"
RESET = f"TRUNCATE {TABLE}, oncepipe.inbox, oncepipe.consumer_offsets"


class ChildFailedError(RuntimeError):
    """A run's child process did not finish its run."""


class PeerFailedError(ChildFailedError):
    """The Quix app did not finish its run."""


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
        self, env: BenchEnv, topic: str, data: EventSet, quix: QuixEnv, kafka_config: Path
    ) -> None:
        self.env = env
        self.kafka_config = kafka_config
        self.topic = topic
        self.total = len(data.encoded)
        self.payload = data.payload_bytes
        self.quix = quix
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
        if row is None or row[0] != self.total or row[1] != self.total:
            raise ChildFailedError(f"{group}: rows {row} in {TABLE}, expected {self.total}")

    def oncepipe(self, handler: str) -> Sample:
        """One run of the oncepipe consumer with ``handler``."""
        self._reset()
        group = f"bench-peer-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "bench.peer_oncepipe", "--topic", self.topic,
               "--group", group, "--events", str(self.total),
               "--batch-size", str(BATCH), "--handler", handler]  # fmt: skip
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


def _variants(runs: Runs, schema: Path, fingerprint: str) -> list[Variant]:
    def quix(commit_every: int) -> Callable[[], Sample]:
        return lambda: runs.quix_run(schema, fingerprint, commit_every)

    variants = []
    if runs.quix.ok:
        variants += [
            Variant(QUIX_500, f"quixstreams Application + PostgreSQLSink, commit_every={BATCH}",
                    quix(BATCH)),
            Variant(QUIX, "the same with Quix's default commit_interval=5.0", quix(0)),
        ]  # fmt: skip
    variants += [
        Variant(
            ONCEPIPE,
            f"ConsumerRuntime + bench.peer:raw_rows: inbox, INSERT, offsets CAS; batch {BATCH}",
            lambda: runs.oncepipe("bench.peer:raw_rows"),
        ),
    ]
    return variants


def _notes(quix: QuixEnv) -> list[str]:
    if not quix.ok:
        return [f"No Quix Streams figures: {quix.error}. Only the oncepipe side was measured."]
    return [
        f"Quix Streams {quix.version} in bench/.venv-quix (PostgreSQLSink with "
        "schema_auto_update=False, include_metadata=False, on_conflict_do_nothing=True; "
        "values decoded with fastavro, no model validation); oncepipe decodes with "
        "Codec.decode_batch (fastavro + pydantic validation). Timed from the first message in "
        "hand to the commit of the last row, every event included."
    ]


def run_peer(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Quix's sink against oncepipe, same raw rows, click and 2 KB events."""
    result = SuiteResult("peer", quick=quick)
    quix = ensure_quix()
    result.notes += _notes(quix)
    codec = Codec.load()
    fingerprint = codec.newest_fingerprint("ClickEvent")
    with env.connect(autocommit=True) as conn:
        conn.execute(CREATE_TABLE)
    # Long enough for Quix's default 5 s checkpoints to happen more than once per run.
    plan = [("click", 20_000 if quick else 150_000), ("click-2k", 10_000 if quick else 50_000)]
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as tmp:
        schema = Path(tmp) / "click_event.avsc"
        schema.write_text(codec.writer_schemas()[fingerprint][1])
        # The Quix app imports nothing of oncepipe: it reads the librdkafka security keys
        # (secrets too) from this file, in a folder only this user reads, never from argv.
        kafka_config = Path(tmp) / "kafka-security.json"
        kafka_config.touch(mode=0o600)
        kafka_config.write_text(json.dumps(security_config(env.settings)))
        for kind, total in plan:
            data = EventSet.build(kind, total, codec)
            with env.topic("peer", PARTITIONS) as topic:
                raw_send(Producer(raw_config(env, idempotent=True)), topic, data)
                shared = Runs(env, topic, data, quix, kafka_config)
                variants = _variants(shared, schema, fingerprint)
                try:
                    samples = interleave(runs, variants)
                except PeerFailedError as exc:
                    result.notes.append(f"{kind}: a Quix run failed, no Quix figures: {exc}")
                    shared.quix = quix = QuixEnv(quix.python, error=str(exc))
                    variants = _variants(shared, schema, fingerprint)
                    samples = interleave(runs, variants)
                result.add_case(
                    kind,
                    variants,
                    samples,
                    baseline=variants[0].name,
                    params={"events": total, "event_bytes": data.median_bytes,
                            "partitions": PARTITIONS},
                )  # fmt: skip
    return result
