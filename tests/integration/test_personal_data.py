"""Personal data: erasure by key, dead-letter purge and retention, each with a ledger record.

The data is made by the real pipeline: an upstream's events go through the outbox and the
relay, a consumer applies them (inbox rows) and dead-letters the poison among them (outbox rows
of ``<topic>.dlq``, then the Kafka dead-letter topic). The ledger never holds a key or payload.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from consumers.dlq import erase_key, purge_dead_letters
from oncepipe.migrations import act_as_owner
from oncepipe.settings import Settings
from producers.outbox import enqueue
from schemas import ClickEvent
from tests.fixtures.poison import CODEC, PAYLOAD_MARK, poison_record, produce_records
from tests.fixtures.relay import ONCEPIPE, RelayThread, wait_drained, worker_env
from tests.fixtures.secured_postgres import SecuredPostgres
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = pytest.mark.integration

POISON_ENV = {"unknown_schema_grace_s": "0", "batch_size": "100"}


def _oncepipe(settings: Settings, *argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [ONCEPIPE, *argv, "--json"], env=worker_env(settings), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _count(url: str, query: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def _ledger(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT action, requested_by, db_user, criteria, counts, erasure_ledger::text"
            " FROM oncepipe.erasure_ledger ORDER BY id"
        ).fetchall()


def _pipeline(
    pool: WorkerPool, relay_thread: Callable[..., RelayThread]
) -> tuple[bytes, list[ClickEvent]]:
    """300 events through outbox, relay and consumer, 3 poison records; the target key."""
    settings = pool.settings
    url = settings.database_url.get_secret_value()
    events = make_clicks(300, seed=31)
    target = CODEC.encode(events[0]).key
    with psycopg.connect(url) as conn:
        for event in events:
            enqueue(conn, event, codec=CODEC, topic=pool.topic)
    relay_thread()
    wait_drained(settings)
    other = next(e for e in events if CODEC.encode(e).key != target)
    poison = [poison_record("handler", events[0]), poison_record("handler", events[0]),
              poison_record("handler", other)]  # fmt: skip
    produce_records(settings, pool.topic, poison)
    worker = pool.start(handler="tests.fixtures.handlers:poison_clicks", **POISON_ENV)
    wait_until(caught_up(url, pool.group, len(events) + 3), 90, "the worker to catch up")
    assert worker.terminate() == 0, worker.text()[-3000:]
    return target, [e for e in events if CODEC.encode(e).key == target]


@pytest.mark.timeout(180)
def test_erase_purge_and_retention_leave_only_a_ledger_without_keys_or_payloads(
    worker_pool: WorkerPool, dlq_topic: str, relay_thread: Callable[..., RelayThread]
) -> None:
    settings = worker_pool.settings
    url = settings.database_url.get_secret_value()
    target, mine = _pipeline(worker_pool, relay_thread)
    ids = [str(e.event_id) for e in mine]
    inbox_of = "SELECT count(*) FROM oncepipe.inbox WHERE event_id::text = ANY(%s)"
    in_dlq = "SELECT count(*) FROM oncepipe.outbox WHERE topic = %s"
    assert _count(url, inbox_of, ids) == len(mine)
    assert _count(url, in_dlq, dlq_topic) == 3
    inbox_before = _count(url, "SELECT count(*) FROM oncepipe.inbox")

    # Erasure by key: a dry run counts and records nothing; the run deletes what it counted.
    with psycopg.connect(url) as conn:
        dry = erase_key(conn, target, dry_run=True)
    assert dry.counts["outbox"] == len(mine)
    assert dry.counts["outbox_dead_letters"] == 2
    assert _ledger(url) == []
    done = _oncepipe(settings, "dlq", "erase", "--key", target.decode(), "--yes")
    assert done["deleted"] == {**dry.counts, "inbox": len(mine)}
    for table in ("outbox", "parked_events", "parked_blockers", "consumer_retries"):
        assert _count(url, f"SELECT count(*) FROM oncepipe.{table} WHERE key = %s", target) == 0
    assert _count(url, inbox_of, ids) == 0
    # Everything else stays: the other key's dead letter, the other events' inbox rows.
    assert _count(url, in_dlq, dlq_topic) == 1
    assert _count(url, "SELECT count(*) FROM oncepipe.inbox") == inbox_before - len(mine)

    # Retention (oncepipe maintain): the dead letter and the published events made 40 days old.
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE oncepipe.outbox SET created_at = now() - interval '40 days' WHERE topic = %s",
            (dlq_topic,),
        )
        conn.execute(
            "UPDATE oncepipe.outbox SET published_at = now() - interval '40 days'"
            " WHERE topic = %s AND id IN (SELECT id FROM oncepipe.outbox WHERE topic = %s"
            " ORDER BY id LIMIT 100)",
            (worker_pool.topic, worker_pool.topic),
        )
    maintained = _oncepipe(settings, "maintain")
    assert maintained["retention_deleted"] == {"outbox_dead_letters": 1, "outbox_published": 100}
    assert _count(url, in_dlq, dlq_topic) == 0

    # Purge: a dead letter written meanwhile, of the topic asked for.
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO oncepipe.outbox (topic, dedupe_id, key, value) VALUES (%s, 'g:0:1',"
            " 'k', %s)",
            (dlq_topic, PAYLOAD_MARK.encode()),
        )
    purged = _oncepipe(settings, "dlq", "purge", "--topic", worker_pool.topic, "--yes")
    assert purged["deleted"] == {"outbox_dead_letters": 1}
    assert _count(url, in_dlq, dlq_topic) == 0

    ledger = _ledger(url)
    assert [row[0] for row in ledger] == ["erase", "retention", "purge"]
    _, by, db_user, criteria, counts, _ = ledger[0]
    assert "@" in by
    assert db_user
    assert criteria["key_sha256"] == hashlib.sha256(target).hexdigest()
    assert counts == done["deleted"]
    assert ledger[2][3]["topics"] == [worker_pool.topic]
    for row in ledger:
        assert target.decode() not in row[5]
        assert PAYLOAD_MARK not in row[5]


def test_the_dlq_role_may_purge_but_only_the_migrator_may_erase(
    secured_postgres: SecuredPostgres,
) -> None:
    with secured_postgres.connect("admin") as conn:
        conn.execute(
            "INSERT INTO oncepipe.outbox (topic, dedupe_id, key, value) VALUES"
            " ('t.dlq', 'g:0:1', 'k', 'v'), ('t', 'e1', 'k', 'v')"
        )
    with secured_postgres.connect("replay") as conn:
        report = purge_dead_letters(conn, topics=("t",), requested_by="ops@host")
        assert report.counts == {"outbox_dead_letters": 1}
        assert not act_as_owner(conn)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            erase_key(conn, b"k")
    with secured_postgres.connect("migrator") as conn:
        assert act_as_owner(conn)
        assert erase_key(conn, b"k").counts["outbox"] == 1
        rows = conn.execute("SELECT action, requested_by FROM oncepipe.erasure_ledger").fetchall()
    assert rows == [("purge", "ops@host"), ("erase", rows[1][1])]
