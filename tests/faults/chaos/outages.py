"""Outages that leave the services running but refuse the work: a read-only database, a topic
whose partitions cannot take a write.

``read_only_episode``: ``ALTER DATABASE ... SET default_transaction_read_only = on`` applies to
new sessions only, so the workers' sessions are terminated too; every reconnect then lands on
a "read-only node" (SQLSTATE 25006 on the first write) until the setting is reset. Both ALTERs
run from the ``postgres`` database: a session of the run's database opened during the episode
is read-only itself. Sessions opened during the episode stay read-only after it (as on a node
that was read-only when they connected): a worker must reconnect to recover.

``partitions_unwritable`` (three brokers): the topic's ``min.insync.replicas`` raised to its
replication factor and one node stopped cleanly (a controlled shutdown moves its leaderships
at once, where a SIGKILL would leave every topic it led leaderless until its session expires),
so every partition of that topic refuses
``acks=all`` writes (NOT_ENOUGH_REPLICAS, retriable) while the other topics, dead letters
included, stay writable; then the node restarts, catches up, and the setting goes back. (A
single broker cannot play this: Kafka 4 caps the effective ``min.insync.replicas`` at the
replication factor, measured here: a write with 2 over 1 replica succeeds.)

Public names: ``read_only_episode``, ``partitions_unwritable``.
"""

from __future__ import annotations

import time

import psycopg
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)
from psycopg import sql

from infra import Kafka
from oncepipe.kafka import AdminClient
from tests.faults.leaders import await_in_sync

__all__ = ["partitions_unwritable", "read_only_episode"]

WORKER_SESSIONS = "oncepipe-%"  # consumers and relays; the harness's sessions are oncepipe-chaos*


def _terminate_workers(conn: psycopg.Connection[tuple[object, ...]], database: str) -> int:
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND application_name LIKE %s"
        " AND application_name NOT LIKE 'oncepipe-chaos%%'",
        (database, WORKER_SESSIONS),
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def read_only_episode(admin_url: str, database: str, seconds: float) -> str:
    """The run's database read-only for new sessions for ``seconds``; the workers reconnect."""
    on = sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
        sql.Identifier(database)
    )
    off = sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
        sql.Identifier(database)
    )
    with psycopg.connect(admin_url, autocommit=True, application_name="oncepipe-chaos") as conn:
        conn.execute(on)
        try:
            terminated = _terminate_workers(conn, database)
            time.sleep(seconds)
        finally:
            conn.execute(off)
    return f"read-only for {seconds:.1f}s, {terminated} worker sessions terminated"


def _set_min_isr(admin: AdminClient, topic: str, value: int) -> None:
    entry = ConfigEntry(
        "min.insync.replicas", str(value), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def partitions_unwritable(
    kafka: Kafka, topic: str, *, node: int, min_isr: int, seconds: float
) -> str:
    """Every partition of ``topic`` refuses ``acks=all`` writes for ``seconds``, then heals."""
    replicas = len(kafka.nodes)
    if replicas < 3:
        raise RuntimeError("unwritable partitions need three brokers (BROKERS=3)")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    _set_min_isr(admin, topic, replicas)
    try:
        kafka.stop(node_id=node)
        time.sleep(seconds)
        kafka.start(node_id=node, timeout=180)
        in_sync = await_in_sync(admin, topic, replicas, timeout=90)
    finally:
        _set_min_isr(admin, topic, min_isr)
    return f"min.insync.replicas {replicas} with node {node} down for {seconds:.1f}s" + (
        "" if in_sync else "; replicas not back in sync within 90s"
    )
