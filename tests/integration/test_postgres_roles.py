"""Least privilege on the secured PostgreSQL: each role is refused what is outside its grants.

Every statement runs as a component's own login role, over TLS (``sslmode=verify-full``), with
its password from its passfile. What each role may do is proven by the secured pipeline test
(tests/integration/test_postgres_secured_pipeline.py); here, what it may not.
"""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.fixtures.relay import ONCEPIPE
from tests.fixtures.secured_postgres import SecuredPostgres

pytestmark = pytest.mark.integration

WORKERS = ("relay", "producer", "consumer", "replay", "ingest")
REFUSED = [
    ("consumer", "DELETE FROM oncepipe.outbox"),
    ("consumer", "UPDATE oncepipe.outbox SET published_at = now()"),
    ("consumer", "SELECT value FROM oncepipe.outbox"),
    ("consumer", "DELETE FROM oncepipe.inbox"),
    ("consumer", "SELECT oncepipe.inbox_create_partition(current_date + 30)"),
    ("consumer", "UPDATE oncepipe.dlq_replays SET outcome = 'sent'"),
    ("relay", 'INSERT INTO oncepipe.inbox (consumer_group, event_id, topic, partition, "offset")'
              " VALUES ('g', gen_random_uuid(), 't', 0, 0)"),
    ("relay", "SELECT * FROM oncepipe.inbox_claim('g', '{}', '{}', '{}', '{}')"),
    ("relay", "UPDATE oncepipe.consumer_offsets SET next_offset = 0"),
    ("relay", "INSERT INTO oncepipe.outbox (topic, dedupe_id, value) VALUES ('t', 'd', 'v')"),
    ("replay", "UPDATE oncepipe.consumer_offsets SET next_offset = 0"),
    ("replay", "INSERT INTO oncepipe.consumer_offsets VALUES ('g', 't', 0, 0)"),
    ("replay", "DELETE FROM oncepipe.inbox"),
    ("replay", "DELETE FROM oncepipe.dlq_replays"),
    ("producer", "SELECT value FROM oncepipe.outbox"),
    ("producer", "DELETE FROM oncepipe.outbox"),
    ("producer", "UPDATE oncepipe.outbox SET published_at = now()"),
    ("producer", "SELECT * FROM oncepipe.consumer_offsets"),
    ("ingest", "SELECT * FROM oncepipe.consumer_offsets"),
    ("ingest", "DELETE FROM oncepipe.outbox"),
    ("ingest", "INSERT INTO oncepipe.schema_registry VALUES ('0123456789abcdef', 't', '{}')"),
    *[(role, "CREATE TABLE oncepipe.intruder (id int)") for role in WORKERS],
    *[(role, "CREATE TABLE public.intruder (id int)") for role in WORKERS],
    *[(role, "ALTER TABLE oncepipe.outbox ADD COLUMN intruder int") for role in WORKERS],
    *[(role, "DROP TABLE oncepipe.consumer_offsets") for role in WORKERS],
    *[(role, "DELETE FROM oncepipe.role_grants") for role in WORKERS],
    *[(role, "SELECT oncepipe.apply_grants()") for role in WORKERS],
]  # fmt: skip


def test_the_schema_belongs_to_the_nologin_owner_and_sessions_use_tls(
    secured_postgres: SecuredPostgres,
) -> None:
    with secured_postgres.connect("admin") as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class"
            " WHERE relnamespace = 'oncepipe'::regnamespace"
        ).fetchall()
        login = conn.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'oncepipe_owner'"
        ).fetchone()
        ssl = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert owners == [("oncepipe_owner",)]
    assert login == (False,)
    assert ssl == (True,)


@pytest.mark.parametrize(("component", "statement"), REFUSED)
def test_a_statement_outside_the_roles_grants_is_refused(
    secured_postgres: SecuredPostgres, component: str, statement: str
) -> None:
    with (
        secured_postgres.connect(component) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_each_role_has_its_own_timeouts(secured_postgres: SecuredPostgres) -> None:
    with secured_postgres.connect("consumer") as conn:
        consumer = conn.execute("SHOW statement_timeout").fetchone()
    with secured_postgres.connect("producer") as conn:
        producer = conn.execute("SHOW statement_timeout").fetchone()
        idle = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    assert consumer == ("1min",)
    assert producer == ("10s",)
    assert idle == ("30s",)


def test_a_connection_without_tls_is_refused(secured_postgres: SecuredPostgres) -> None:
    plain = make_conninfo(secured_postgres.url("consumer"), sslmode="disable")
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        psycopg.connect(plain).close()


def test_the_server_certificate_is_verified_against_the_ca(
    secured_postgres: SecuredPostgres,
) -> None:
    # The system's trust store does not know the local CA: verify-full refuses the server.
    wrong_ca = make_conninfo(secured_postgres.url("consumer"), sslrootcert="system")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong_ca).close()


@pytest.mark.parametrize("command", [("relay",), ("migrate",)])
def test_a_wrong_password_fails_at_start_with_one_line(
    secured_postgres: SecuredPostgres, command: tuple[str, ...]
) -> None:
    wrong = "not-the-password"
    url = make_conninfo(secured_postgres.url("relay"), password=wrong)
    result = subprocess.run(
        [ONCEPIPE, *command],
        env={"PATH": "/usr/bin:/bin", "ONCEPIPE_DATABASE_URL": url,
             "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "password authentication failed" in lines[0]
    assert wrong not in result.stderr


def test_the_migrator_migrates_and_maintains_as_the_owner(
    secured_postgres: SecuredPostgres,
) -> None:
    name = secured_postgres.fresh_database()
    env = {"PATH": "/usr/bin:/bin", "ONCEPIPE_DATABASE_URL": secured_postgres.url("migrator", name)}
    for command in (("migrate", "--json"), ("maintain", "--ahead-days", "9", "--json")):
        result = subprocess.run(
            [ONCEPIPE, *command], env=env, capture_output=True, text=True, timeout=120,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    with psycopg.connect(secured_postgres.url("admin", name)) as conn:
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class"
            " WHERE relnamespace = 'oncepipe'::regnamespace"
        ).fetchall()
        days = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'oncepipe.inbox'::regclass"
        ).fetchone()
    assert owners == [("oncepipe_owner",)]
    assert days is not None
    assert days[0] >= 10


def test_a_worker_role_cannot_run_maintenance(secured_postgres: SecuredPostgres) -> None:
    name = secured_postgres.fresh_database()
    env = {"PATH": "/usr/bin:/bin", "ONCEPIPE_DATABASE_URL": secured_postgres.url("consumer", name)}
    result = subprocess.run(
        [ONCEPIPE, "maintain", "--ahead-days", "12"], env=env, capture_output=True, text=True,
        timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "permission denied" in result.stderr


def test_the_consumer_may_lock_every_inbox_partition_in_share_mode(
    secured_postgres: SecuredPostgres,
) -> None:
    # What inbox_claim does to yesterday's partition in the first hour of a UTC day, on every
    # partition: those of the migration and one created later by maintenance, as the owner.
    with secured_postgres.connect("migrator", autocommit=True) as conn:
        conn.execute("SET ROLE oncepipe_owner")
        conn.execute("SELECT oncepipe.inbox_create_partition(current_date + 40)")
    with secured_postgres.connect("consumer") as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits"
                " WHERE inhparent = 'oncepipe.inbox'::regclass"
            ).fetchall()
        ]
        assert len(names) >= 5
        for name in names:
            conn.execute(f"LOCK TABLE {name} IN SHARE MODE")
