"""The Debezium JDBC sink on Kafka Connect writing the peer comparison's raw rows.

``ConnectWorker`` starts one standalone Connect worker (one JVM, ``connect-runtime`` from the
broker's jar set) and keeps it for several runs; each run creates a Debezium JDBC sink connector
(one task) over the worker's REST API, reading ``topic`` from the start as a fresh consumer
group, values through oncepipe's ``AvroSingleObjectConverter``
(``bench/jvm/avro-single-object``): every schema version of ``schemas/avro``, maps as JSON text
for the ``jsonb`` column. ``InsertField`` adds the consumer group, topic, partition and offset
columns; the sink upserts by ``(consumer_group, event_id)`` (``insert.mode=upsert``,
``primary.key.mode=record_value``) into ``public.bench_peer_rows``, one JDBC batch and
transaction per ``put`` of at most ``batch`` records (``consumer.max.poll.records``,
``batch.size``; 500 by default), and the connector is deleted when the run ends. ``run_sink`` is
one run on a worker of its own.

The marks are the other peers': **first** when the task's first non-empty ``put`` starts (its
DEBUG line ``Received N changes.``, the one logger sent to the worker's stdout), **last** when
the rows of the put holding the last record are committed (seen by counting the group's rows,
polled only from the start of that put). CPU is the JVM's own (every thread, from
``/proc/<pid>/stat``) between the two. The worker is stopped (SIGTERM) at the end; an ERROR
of a task or the connector (a record the converter refused, a failed write) ends the run at once
with that line.

Public names: ``SinkRun``, ``SinkFailedError``, ``ConnectWorker``, ``run_sink``,
``connector_config``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from bench.jvm_jars import JvmPeer
from infra.workers import Supervisor

__all__ = ["ConnectWorker", "SinkFailedError", "SinkRun", "connector_config", "run_sink"]

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas" / "avro"
CONNECTOR = "io.debezium.connector.jdbc.JdbcSinkConnector"
CONVERTER = "dev.oncepipe.avro.connect.AvroSingleObjectConverter"
# One JVM beside the broker, PostgreSQL and the other peers on 2 shared cores: a heap as small as
# the run needs (connect-standalone.sh's default is -Xmx2G) and the default collector.
JVM_OPTIONS = ("-Xms256m", "-Xmx768m", "-Duser.timezone=UTC", "-Djava.awt.headless=true")
BATCH = 500
RUN_TIMEOUT_S = 900
START_TIMEOUT_S = 300
_LISTENING = re.compile(r"^INFO \S+ REST server listening at (\S+?),")
_RECEIVED = re.compile(r"^DEBUG \S+ Received (\d+) changes\.$")
# ERRORs that end a run: a task or the connector failed. Others are not fatal (plugin discovery
# logs Debezium's CloudEvents converter, which does not load on Kafka 4.4, at ERROR).
_FATAL = re.compile(
    r"^ERROR (org\.apache\.kafka\.connect\.(runtime\.Worker|cli)|io\.debezium\.connector)"
)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %p %c %m%n
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.err.ref = ERR
rootLogger.appenderRef.out.ref = OUT
rootLogger.appenderRef.out.level = ERROR
logger.task.name = io.debezium.connector.jdbc.JdbcSinkConnectorTask
logger.task.level = DEBUG
logger.task.additivity = false
logger.task.appenderRef.out.ref = OUT
logger.task.appenderRef.err.ref = ERR
logger.task.appenderRef.err.level = INFO
logger.rest.name = org.apache.kafka.connect.runtime.rest.RestServer
logger.rest.level = INFO
logger.rest.appenderRef.out.ref = OUT
logger.connect.name = org.apache.kafka.connect.runtime.Connect
logger.connect.level = INFO
logger.connect.appenderRef.out.ref = OUT
"""


class SinkFailedError(RuntimeError):
    """The Connect worker did not write every row; the message has its last log lines."""


@dataclass(frozen=True)
class SinkRun:
    """One run's inputs."""

    bootstrap: str
    topic: str
    group: str
    database_url: str
    table: str
    records: int
    """Records in the topic (duplicates included): the run ends once the sink put them all."""
    rows: int
    """Distinct rows the table must hold for the group at the end."""
    batch: int = BATCH
    """Records per put (``consumer.max.poll.records``) and per JDBC batch (``batch.size``)."""


def _properties(values: dict[str, str]) -> str:
    # java.util.Properties: backslashes and the separators in values need escaping.
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    return "".join(f"{key}={escape(value)}\n" for key, value in values.items())


def worker_config(bootstrap: str, plugins: Path, offsets: Path) -> dict[str, str]:
    """The standalone worker's settings (``plugins``: a folder of plugin folders)."""
    return {
        "bootstrap.servers": bootstrap,
        "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "offset.storage.file.filename": str(offsets),
        "plugin.path": str(plugins),
        # Every plugin here ships its ServiceLoader manifests: no reflective scan of the jars.
        "plugin.discovery": "service_load",
        "listeners": "http://127.0.0.1:0",
        # Each connector sets its own consumer.override.max.poll.records (its batch).
        "connector.client.config.override.policy": "All",
    }


def connector_config(run: SinkRun) -> dict[str, str]:
    """The Debezium JDBC sink's settings for one run (the group is the connector's name)."""
    db = conninfo_to_dict(run.database_url)
    host = db.get("host") or "localhost"
    url = f"jdbc:postgresql://{host}:{db.get('port') or 5432}/{db['dbname']}"
    schema, table = run.table.split(".")
    return {
        "name": run.group,
        "connector.class": CONNECTOR,
        "tasks.max": "1",
        "topics": run.topic,
        "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "value.converter": CONVERTER,
        "value.converter.schemas.dir": str(SCHEMAS),
        "value.converter.map.format": "json",
        "connection.url": url,
        "connection.username": str(db.get("user") or ""),
        "connection.password": str(db.get("password") or ""),
        "insert.mode": "upsert",
        "primary.key.mode": "record_value",
        "primary.key.fields": "consumer_group,event_id",
        "schema.evolution": "none",
        "collection.name.format": f"{schema}.{table}",
        "quote.identifiers": "true",  # the column "offset" is a reserved word
        "batch.size": str(run.batch),
        "consumer.override.max.poll.records": str(run.batch),
        "transforms": "where",
        "transforms.where.type": "org.apache.kafka.connect.transforms.InsertField$Value",
        "transforms.where.static.field": "consumer_group",
        "transforms.where.static.value": run.group,
        "transforms.where.topic.field": "topic",
        "transforms.where.partition.field": "partition",
        "transforms.where.offset.field": "offset",
    }


def _jvm_cpu_s(pid: int) -> float:
    """User + system CPU seconds of every thread of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _tail(log: Path) -> str:
    """The worker's last log lines, and the causes of any exception it logged."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    causes = [line.strip() for line in lines if line.startswith("Caused by: ")]
    tail = " | ".join(line for line in lines[-15:] if line.strip())[-1500:]
    return " | ".join([*list(dict.fromkeys(causes))[-4:], tail])


class ConnectWorker:
    """One standalone Connect worker (a JVM) kept for several runs; connectors come and go.

    Started with no connector; each ``run`` creates one over the worker's REST API (a fresh
    consumer group), follows it to its last row and deletes it. Keeping the JVM between runs is
    how Connect is deployed, and it leaves the JIT's warm-up out of every run but the first.
    """

    def __init__(self, peer: JvmPeer, bootstrap: str) -> None:
        if not peer.ok or peer.worker is None:
            raise SinkFailedError(f"no Connect worker: {peer.error}")
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-connect-")
        tmp = Path(self._tmp.name)
        (tmp / "log4j2.properties").write_text(_LOG4J)
        # Each folder under plugin.path is one plugin with its own class loader.
        plugins = tmp / "plugins"
        plugins.mkdir()
        (plugins / "debezium-connector-jdbc").symlink_to(peer.debezium or "", True)
        (plugins / "avro-single-object").symlink_to(peer.converter or "", True)
        worker = tmp / "worker.properties"
        worker.write_text(_properties(worker_config(bootstrap, plugins, tmp / "offsets")))
        argv = [
            "java", *JVM_OPTIONS, f"-Dlog4j2.configurationFile={tmp / 'log4j2.properties'}",
            "-cp", f"{peer.worker}/*", "org.apache.kafka.connect.cli.ConnectStandalone",
            str(worker),
        ]  # fmt: skip
        self.log = tmp / "connect.log"
        self._processes = Supervisor(cwd=ROOT)
        self._child = self._processes.start("connect", argv, log=self.log, stdout_pipe=True)
        self._lines = self._child.output_lines()
        self._url = ""
        watchdog = threading.Timer(START_TIMEOUT_S, self._child.kill)
        watchdog.start()
        try:
            url = ""
            for raw in self._lines:
                found = _LISTENING.match(raw.strip())
                url = found.group(1).rstrip("/") if found else url
                if raw.strip().endswith(" Kafka Connect started"):
                    self._url = url  # the REST resources answer from here on, not before
                    break
        finally:
            watchdog.cancel()
        if not self._url:
            self.close()
            raise SinkFailedError(f"connect worker did not start: {_tail(self.log)}")

    def _rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own worker, on loopback
            f"{self._url}{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=120):  # noqa: S310
                pass
        except urllib.error.URLError as exc:
            raise SinkFailedError(
                f"connect REST {method} {path}: {exc}: {_tail(self.log)}"
            ) from exc

    def run(
        self, run: SinkRun, mark: Callable[[str], None], count_rows: Callable[[], int]
    ) -> dict[str, Any]:
        """One run: create the connector, wait until every row is committed, delete it.

        ``mark`` is called with ``"first"`` and ``"last"`` as the marks pass; ``count_rows``
        counts the group's rows in the table. Returns ``events``, ``wall_s``, ``cpu_s`` (the
        JVM's) and ``transactions`` (non-empty puts, one JDBC transaction each).
        """
        self._rest("PUT", f"/connectors/{run.group}/config", connector_config(run))
        watchdog = threading.Timer(RUN_TIMEOUT_S, self._child.kill)
        watchdog.start()
        try:
            return _follow(
                pid=self._child.pid, lines=self._lines, run=run, mark=mark,
                count_rows=count_rows, log=self.log,
            )  # fmt: skip
        finally:
            watchdog.cancel()
            if self._child.alive():
                # A connector left behind costs the next run nothing (its topic is read to the
                # end); the run's own outcome, or error, is what to report.
                with contextlib.suppress(SinkFailedError):
                    self._rest("DELETE", f"/connectors/{run.group}")

    def close(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL after 30 s) and remove its files."""
        try:
            self._child.stop(30)
        except subprocess.TimeoutExpired:
            self._child.kill()
        finally:
            self._processes.kill_all()
            self._tmp.cleanup()

    def __enter__(self) -> ConnectWorker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def run_sink(
    peer: JvmPeer, run: SinkRun, mark: Callable[[str], None], count_rows: Callable[[], int]
) -> dict[str, Any]:
    """One run on a worker of its own: start it, ``ConnectWorker.run``, stop it."""
    with ConnectWorker(peer, run.bootstrap) as worker:
        return worker.run(run, mark, count_rows)


def _follow(
    *,
    pid: int,
    lines: Iterator[str],
    run: SinkRun,
    mark: Callable[[str], None],
    count_rows: Callable[[], int],
    log: Path,
) -> dict[str, Any]:
    first: tuple[float, float] | None = None
    received = puts = 0
    for raw in lines:
        line = raw.strip()
        if _FATAL.match(line):
            raise SinkFailedError(f"connect worker: {line[:600]} | log: {_tail(log)}")
        found = _RECEIVED.match(line)
        if found is None or found.group(1) == "0":
            continue
        if first is None:
            first = (time.perf_counter(), _jvm_cpu_s(pid))
            mark("first")
        received += int(found.group(1))
        puts += 1
        if received >= run.records:
            break
    if first is None or received < run.records:
        raise SinkFailedError(
            f"connect worker ended after {received} of {run.records} records: {_tail(log)}"
        )
    # The put holding the last record has started; its transaction commits when it returns.
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while count_rows() < run.rows:
        if time.monotonic() > deadline:
            raise SinkFailedError(f"rows of {run.group} never reached {run.rows}: {_tail(log)}")
        time.sleep(0.005)
    last = (time.perf_counter(), _jvm_cpu_s(pid))
    mark("last")
    return {
        "events": received,
        "wall_s": last[0] - first[0],
        "cpu_s": last[1] - first[1],
        "transactions": puts,
    }
