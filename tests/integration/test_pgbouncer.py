"""The pipeline behind a real PgBouncer in transaction pooling mode (Debian's package).

The relay publishes over a direct connection (it LISTENs); two consumer workers write their
effects, inbox rows and offsets through PgBouncer, whose two server connections their
transactions share. Every event counts once. What needs a session of its own refuses to start
behind transaction pooling, and a direct-connection setup pointed at PgBouncer says what to set.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from cli.observe import _Reads
from oncepipe.db import create_pool
from oncepipe.metrics import MetricsSettings
from oncepipe.settings import Settings
from producers.outbox import enqueue_record, event_headers
from producers.settings import RelaySettings
from schemas import ClickEvent, Codec
from tests.fixtures.pgbouncer import Bouncer
from tests.fixtures.relay import ONCEPIPE, RelayThread, wait_drained, worker_env
from tests.fixtures.workers import (
    WorkerPool,
    assert_exact,
    caught_up,
    make_clicks,
    wait_until,
    with_duplicates,
)

pytestmark = pytest.mark.integration


def _enqueue(database_url: str, topic: str, records: list[ClickEvent]) -> None:
    """Each record as an outbox row; a repeated event gets its own row (a new Kafka record)."""
    codec = Codec.load()
    seen: set[str] = set()
    with psycopg.connect(database_url) as conn:
        for record in records:
            encoded = codec.encode(record)
            dedupe = str(encoded.event_id)
            dedupe = f"{dedupe}-again" if dedupe in seen else dedupe
            seen.add(str(encoded.event_id))
            enqueue_record(conn, topic, dedupe, key=encoded.key, value=encoded.value,
                           headers=event_headers(encoded))  # fmt: skip


@pytest.mark.timeout(180)
def test_consumers_through_transaction_pooling_count_exactly_once(
    worker_pool: WorkerPool, pgbouncer: Bouncer, relay_thread: Callable[..., RelayThread]
) -> None:
    settings = worker_pool.settings
    direct = settings.database_url.get_secret_value()
    events = make_clicks(1_000, seed=29)
    records = with_duplicates(events, 0.2, seed=29)
    _enqueue(direct, worker_pool.topic, records)
    relay_thread()
    wait_drained(settings)
    worker_pool.extra_env.update(
        ONCEPIPE_DATABASE_URL=pgbouncer.url(direct), ONCEPIPE_DATABASE_POOLER="transaction"
    )
    workers = [worker_pool.start(), worker_pool.start()]
    wait_until(caught_up(direct, worker_pool.group, len(records)), 90, "the workers to catch up")
    for worker in workers:
        assert worker.terminate() == 0, worker.text()[-3000:]
    assert_exact(direct, worker_pool.group, records)
    carried = pgbouncer.stats(str(conninfo_to_dict(direct)["dbname"]))
    assert carried["total_xact_count"] > 0, carried
    errors = [line for line in worker_pool.lines() if line.get("level") == "error"]
    assert errors == []


def _run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ONCEPIPE, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_session_components_refuse_transaction_pooling(
    settings: Settings, pgbouncer: Bouncer
) -> None:
    env = worker_env(
        settings,
        ONCEPIPE_DATABASE_URL=pgbouncer.url(settings.database_url.get_secret_value()),
        ONCEPIPE_DATABASE_POOLER="transaction",
    )
    for argv, needs in (
        (("relay",), "the relay needs LISTEN"),
        (("maintain",), "oncepipe maintain needs SET ROLE"),
        (("migrate",), "oncepipe migrate needs SET ROLE"),
    ):
        done = _run(*argv, env=env)
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert needs in last, done.stderr
        assert "ONCEPIPE_DATABASE_POOLER=none" in last, done.stderr


def test_a_direct_setup_pointed_at_pgbouncer_says_what_to_set(
    settings: Settings, pgbouncer: Bouncer
) -> None:
    env = worker_env(
        settings, ONCEPIPE_DATABASE_URL=pgbouncer.url(settings.database_url.get_secret_value())
    )
    for argv in (("consume", "--group", "g", "--topic", "t", "--handler", "clicks"),
                 ("maintain",)):  # fmt: skip
        done = _run(*argv, env=env)
        assert done.returncode == 2, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert "leads to a PgBouncer" in last
        assert "ONCEPIPE_DATABASE_POOLER=transaction" in last


def test_a_pool_through_transaction_pooling_pins_read_committed_and_prepares_nothing(
    settings: Settings, pgbouncer: Bouncer, admin_url: str
) -> None:
    # The database's default is REPEATABLE READ; more pooled connections than PgBouncer's two
    # server connections; one statement run far past psycopg's prepare threshold (5), which
    # would fail on a server connection that never saw the PREPARE.
    direct = settings.database_url.get_secret_value()
    dbname = conninfo_to_dict(direct)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            f"ALTER DATABASE \"{dbname}\" SET default_transaction_isolation = 'repeatable read'"
        )
    pooled = settings.model_copy(
        update={"database_url": SecretStr(pgbouncer.url(direct)), "database_pooler": "transaction"}
    )
    query = "SELECT pg_try_advisory_xact_lock(1, hashtext(%s)), current_setting(%s)"
    seen = set()
    with create_pool(pooled, "oncepipe-ingest", min_size=4, max_size=4) as pool:
        for n in range(30):
            # Two transactions open at once: they hold both server connections, so which one
            # a pooled connection gets changes from one use to the next.
            with (
                pool.connection() as first,
                pool.connection() as second,
                first.transaction(),
                second.transaction(),
            ):
                for i, conn in enumerate((first, second)):
                    row = conn.execute(query, (f"key-{n}-{i}", "transaction_isolation"))
                    assert row.fetchone() == (True, "read committed")
                    seen.add(id(conn))
    assert len(seen) == 4


def test_a_polling_relay_publishes_through_transaction_pooling(
    settings: Settings, pgbouncer: Bouncer, make_topic: Callable[..., str]
) -> None:
    # Its leases are rows, not locks: without LISTEN nothing of it needs a session.
    direct = settings.database_url.get_secret_value()
    topic = make_topic("clicks", 3)
    _enqueue(direct, topic, make_clicks(200, seed=3))
    pooled = settings.model_copy(
        update={"database_url": SecretStr(pgbouncer.url(direct)), "database_pooler": "transaction"}
    )
    relay = RelayThread(pooled, RelaySettings(listen=False, poll_interval_s=0.2))
    try:
        wait_drained(settings)
    finally:
        relay.stop()
    assert relay.relay.published == 200


def test_a_workers_metrics_reads_leave_no_setting_on_a_pooled_server_connection(
    settings: Settings, pgbouncer: Bouncer
) -> None:
    """The probes' and scrapes' statement timeout is the transaction's, not the session's.

    Behind transaction pooling a session ``SET`` stays on the server connection the next
    client is handed (PgBouncer reuses the last one used first).
    """
    url = pgbouncer.url(settings.database_url.get_secret_value())
    pooled = settings.model_copy(
        update={"database_url": SecretStr(url), "database_pooler": "transaction"}
    )

    def timeout() -> str:
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
            row = conn.execute("SHOW statement_timeout").fetchone()
        return str(row[0]) if row else ""

    before = timeout()
    reads = _Reads(pooled, MetricsSettings(probe_timeout_s=1.234), "oncepipe-metrics:pooled")
    for _ in range(3):
        with reads.database() as conn:
            row = conn.execute("SHOW statement_timeout").fetchone()
            assert row is not None
            assert row[0] == "1234ms"  # in force while it reads
    assert [timeout() for _ in range(3)] == [before] * 3
