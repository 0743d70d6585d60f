"""Where the benchmarks run: their own database and throw-away topics on the services.

The benchmarks never touch the developer's data: they create (once) and migrate a database
named ``<database>_bench`` on the same PostgreSQL server, empty the tables they use before
each run, and publish only to topics named ``bench.<suite>.<random>`` that they delete after.

Public names: ``BenchEnv``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from psycopg import sql

from bench.services import ServiceCpu
from oncepipe.db import connect
from oncepipe.kafka import create_admin, create_topics
from oncepipe.migrations import apply_migrations
from oncepipe.settings import Settings, load_settings

__all__ = ["BenchEnv"]

PARTITIONS = 6  # the event topics' default (TopicSettings.partitions)


def _bench_url(url: str) -> tuple[str, str]:
    """The URL of the bench database next to ``url``'s, and that database's name."""
    base, _, query = url.partition("?")
    prefix, _, name = base.rpartition("/")
    bench = f"{name or 'oncepipe'}_bench"
    return f"{prefix}/{bench}" + (f"?{query}" if query else ""), bench


class BenchEnv:
    """Settings pointing at the bench database, plus topic and connection helpers."""

    def __init__(self, kafka: Mapping[str, Any] | None = None) -> None:
        """``kafka``: Settings fields that replace the environment's Kafka ones (a secured run)."""
        base = load_settings()
        url, self.database = _bench_url(base.database_url.get_secret_value())
        with connect(base, "oncepipe-bench", autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        self.settings: Settings = load_settings(database_url=url, **(kafka or {}))
        apply_migrations(url)
        self._admin = create_admin(self.settings)

    def service_cpu(self) -> ServiceCpu:
        """A CPU and memory sampler of the services these benchmarks talk to."""
        return ServiceCpu()

    @property
    def database_url(self) -> str:
        """The bench database's URL (with its password, for child processes)."""
        return self.settings.database_url.get_secret_value()

    def connect(self, autocommit: bool = False) -> psycopg.Connection[Any]:
        """A new connection to the bench database."""
        return connect(self.settings, "oncepipe-bench", autocommit=autocommit)

    def has_table(self, qualified: str) -> bool:
        """True when the bench database has table ``schema.name``."""
        with self.connect(autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
        return bool(row and row[0])

    def create_topic(self, suite: str, partitions: int = PARTITIONS) -> str:
        """Create a fresh topic ``bench.<suite>.<random>``; return its name."""
        name = f"bench.{suite}.{uuid.uuid4().hex[:8]}"
        create_topics(self._admin, {name: partitions})
        return name

    def delete_topic(self, name: str) -> None:
        """Delete a benchmark topic (best effort: it is only disk space)."""
        for future in self._admin.delete_topics([name], request_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)

    @contextlib.contextmanager
    def topic(self, suite: str, partitions: int = PARTITIONS) -> Iterator[str]:
        """A fresh topic for one benchmark, deleted afterwards."""
        name = self.create_topic(suite, partitions)
        try:
            yield name
        finally:
            self.delete_topic(name)
