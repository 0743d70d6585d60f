"""Outages that leave the services running but refuse the work: a read-only database, a topic
whose partitions cannot take a write.

``read_only_episode``: ``ALTER DATABASE ... SET default_transaction_read_only = on`` applies to
new sessions only, so the workers' sessions are terminated too; every reconnect then lands on
a "read-only node" (SQLSTATE 25006 on the first write) until the setting is reset. Both ALTERs
run from the ``postgres`` database: a session of the run's database opened during the episode
is read-only itself. Sessions opened during the episode stay read-only after it (as on a node
that was read-only when they connected): a worker must reconnect to recover.

``partitions_unwritable``: the topic's ``min.insync.replicas`` raised above its replication
factor; every ``acks=all`` write is refused (NOT_ENOUGH_REPLICAS) until it is set back.

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

from oncepipe.kafka import AdminClient

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
    bootstrap: str, topic: str, replicas: int, min_isr: int, seconds: float
) -> str:
    """Every partition of ``topic`` refuses ``acks=all`` writes for ``seconds``, then heals."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    _set_min_isr(admin, topic, replicas + 1)
    try:
        time.sleep(seconds)
    finally:
        _set_min_isr(admin, topic, min_isr)
    return f"min.insync.replicas {replicas + 1} > {replicas} replicas for {seconds:.1f}s"
