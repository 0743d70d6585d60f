"""One run of the Flink peer: its PostgreSQL, its tables, its JVM, and the exactness check.

- **PostgreSQL**: the JDBC sink's exactly-once mode prepares an XA transaction at every
  checkpoint (``PREPARE TRANSACTION``), which PostgreSQL refuses while
  ``max_prepared_transactions`` is 0 (its default, and what ``make up`` gives users). The
  benchmark therefore starts a cluster of its own (``BenchPostgres``: the same server code as
  ``make up``, state under ``.state/flink-postgres``, a free port), sets
  ``max_prepared_transactions`` with ``ALTER SYSTEM`` and restarts it. oncepipe's side of the
  comparison writes into the same cluster, so both pay the same server.
- **Tables**: oncepipe's migrations, then ``public.flink_click_events``,
  ``public.flink_item_click_counts`` and ``public.flink_user_item_click_counts`` created ``LIKE``
  oncepipe's three click tables (same columns, keys and constraints).
- **JVM**: ``FlinkJob`` starts ``dev.oncepipe.flink.FlinkClicks`` (a local MiniCluster) with a
  512 MB heap and two processors, checkpoints retained under a folder, and can restart it from
  the newest retained checkpoint (``latest_checkpoint``).
- **Check**: ``effects`` reads a group's rows and counters from either table set;
  ``expected`` computes them from the records produced; they must be equal.

Public names: ``BenchPostgres``, ``Effects``, ``FlinkJob``, ``create_flink_tables``, ``effects``,
``expected``, ``latest_checkpoint``, ``SCHEMAS_DIR``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import psycopg

from bench.flink_jars import build_flink_job
from infra.paths import layout
from infra.postgres.server import Postgres
from oncepipe.migrations import apply_migrations
from schemas import ClickEvent

__all__ = [
    "SCHEMAS_DIR",
    "BenchPostgres",
    "Effects",
    "FlinkJob",
    "applied_rows",
    "create_flink_tables",
    "effects",
    "expected",
    "latest_checkpoint",
]

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"
MAX_PREPARED = 16
# Flink's own launcher opens these packages to its serializers (Java 17 modules).
_ADD_OPENS = [
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in (
        "java.lang", "java.lang.reflect", "java.util", "java.util.concurrent", "java.io",
        "java.net", "java.nio", "java.text", "java.time", "sun.nio.ch",
    )
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchPostgres:
    """A PostgreSQL cluster of the benchmark's own with ``max_prepared_transactions`` > 0."""

    def __init__(self) -> None:
        base = layout()
        self._pg = Postgres(
            replace(base, state_dir=base.state_dir / "flink-postgres", postgres_port=_free_port())
        )

    def start(self) -> str:
        """Start (initdb on first use), enable prepared transactions; the database URL."""
        if self._pg.running():
            self._pg.stop()
        self._pg.start()
        with psycopg.connect(self._pg.url, autocommit=True) as conn:
            row = conn.execute("SHOW max_prepared_transactions").fetchone()
            if row is None or int(row[0]) < MAX_PREPARED:
                conn.execute(f"ALTER SYSTEM SET max_prepared_transactions = {MAX_PREPARED}")
                restart = True
            else:
                restart = False
        if restart:  # a postmaster setting: read at start only
            self._pg.stop()
            self._pg.start()
        url = self._pg.url
        apply_migrations(url)
        create_flink_tables(url)
        return url

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._pg.pid()

    def stop(self) -> None:
        """Stop the cluster (its data stays for the next run)."""
        self._pg.stop()


def create_flink_tables(url: str) -> None:
    """The Flink job's tables, shaped like oncepipe's click tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("click_events", "item_click_counts", "user_item_click_counts"):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS public.flink_{table}"
                f" (LIKE public.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
                " INCLUDING INDEXES)"
            )


@dataclass(frozen=True)
class Effects:
    """What a group wrote: raw rows per event_id, and both counters."""

    rows: Counter[str]
    items: dict[tuple[str, str], int]
    user_items: dict[tuple[str, str], int]


def expected(records: Sequence[ClickEvent]) -> Effects:
    """The effects of applying each distinct event of ``records`` exactly once."""
    distinct = {str(e.event_id): e for e in records}
    items: Counter[tuple[str, str]] = Counter()
    user_items: Counter[tuple[str, str]] = Counter()
    for event in distinct.values():
        items[(event.item_id, event.action.value)] += 1
        user_items[(event.user_id, event.item_id)] += 1
    return Effects(Counter(distinct.keys()), dict(items), dict(user_items))


def effects(url: str, group: str, prefix: str = "") -> Effects:
    """The rows and counters of ``group`` in oncepipe's tables (``prefix=''``) or Flink's."""
    with psycopg.connect(url) as conn:
        rows = Counter(
            str(r[0])
            for r in conn.execute(
                f"SELECT event_id FROM public.{prefix}click_events WHERE consumer_group = %s",
                (group,),
            )
        )
        items = {
            (str(r[0]), str(r[1])): int(r[2])
            for r in conn.execute(
                f"SELECT item_id, action, count FROM public.{prefix}item_click_counts"
                " WHERE consumer_group = %s",
                (group,),
            )
        }
        user_items = {
            (str(r[0]), str(r[1])): int(r[2])
            for r in conn.execute(
                f"SELECT user_id, item_id, count FROM public.{prefix}user_item_click_counts"
                " WHERE consumer_group = %s",
                (group,),
            )
        }
    return Effects(rows, items, user_items)


def applied_rows(url: str, group: str, prefix: str = "") -> int:
    """How many raw rows of ``group`` are visible (committed)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM public.{prefix}click_events WHERE consumer_group = %s",
            (group,),
        ).fetchone()
    return int(row[0]) if row else 0


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest completed retained checkpoint under ``folder`` (``<job>/chk-N/_metadata``)."""
    done = [meta.parent for meta in folder.glob("*/chk-*/_metadata")]
    return max(done, key=lambda chk: int(chk.name.split("-")[1]), default=None)


class FlinkJob:
    """The Flink job's JVM: started, stopped or SIGKILLed, restartable from its checkpoints."""

    def __init__(
        self,
        *,
        url: str,
        bootstrap: str,
        topic: str,
        group: str,
        workdir: Path,
        checkpoint_ms: int = 1000,
        parallelism: int = 1,
        batch_size: int = 500,
        write: str = "xa",
    ) -> None:
        """``write``: ``xa`` (effects as they come) or ``xa-if-new`` (only for new raw rows)."""
        self.checkpoints = workdir / "checkpoints"
        self.log_path = workdir / "flink.log"
        self._workdir = workdir
        conninfo = psycopg.conninfo.conninfo_to_dict(url)
        self._args = [
            "--bootstrap", bootstrap, "--topic", topic, "--group", group,
            "--pg-host", str(conninfo.get("host", "127.0.0.1")),
            "--pg-port", str(conninfo.get("port", 5432)),
            "--pg-database", str(conninfo.get("dbname", "oncepipe")),
            "--pg-user", str(conninfo.get("user", "oncepipe")),
            "--pg-password", str(conninfo.get("password", "")),
            "--schemas-dir", str(SCHEMAS_DIR), "--checkpoint-dir", str(self.checkpoints),
            "--checkpoint-ms", str(checkpoint_ms), "--parallelism", str(parallelism),
            "--batch-size", str(batch_size), "--write", write,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, *, restore: Path | None = None) -> None:
        """Start the JVM (from ``restore``, a retained checkpoint, when given)."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        classpath = build_flink_job()
        extra = ["--restore", str(restore)] if restore is not None else []
        if self._log is not None:  # a restart after a kill
            self._log.close()
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                shutil.which("java") or "java", "-Xms256m", "-Xmx512m",
                "-XX:ActiveProcessorCount=2", "-XX:+UseSerialGC", *_ADD_OPENS,
                "-cp", classpath, "dev.oncepipe.flink.FlinkClicks", *self._args, *extra,
            ],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def alive(self) -> bool:
        """True while the JVM runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the JVM (no checkpoint, no commit, prepared XA transactions left behind)."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """End the JVM (SIGTERM, then SIGKILL after 20 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def first_cause(self) -> str:
        """The log's first ``ERROR:`` or ``Caused by`` line (why the job ended), or ''."""
        if not self.log_path.exists():
            return ""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "ERROR:" in line or line.startswith("Caused by"):
                return line.strip()[:300]
        return ""

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the JVM's log (for a failure's message)."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
