"""Checks during the run: samples that must hold at every instant, not only at the end.

Every ``interval`` seconds, in ONE REPEATABLE READ transaction (so both tables are seen at the
same instant): no business row (``public.click_events``) without its inbox row, and the stored
offsets, which are kept in memory to spot any offset that moved backwards between samples.
Every consumer group of the run is sampled (the second one has no rows until it starts).
PostgreSQL being down (a fault) only skips samples.

Public names: ``Monitor``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psycopg

__all__ = ["Monitor"]

_ORPHANS = """
SELECT c.consumer_group, c.event_id::text FROM public.click_events AS c
WHERE c.consumer_group = ANY(%(groups)s) AND NOT EXISTS (
    SELECT 1 FROM oncepipe.inbox AS i
    WHERE i.consumer_group = c.consumer_group AND i.event_id = c.event_id)
LIMIT 20
"""
_OFFSETS = (
    "SELECT consumer_group, topic, partition, next_offset FROM oncepipe.consumer_offsets"
    " WHERE consumer_group = ANY(%(groups)s)"
)


@dataclass
class Monitor:
    """Samples the database in the background while faults are injected."""

    url: str
    groups: list[str]
    interval: float = 1.0
    samples: int = 0
    skipped: int = 0
    # (group, event_id) of click rows seen without an inbox row
    orphans: list[tuple[str, str]] = field(default_factory=list)
    # (group, topic, partition, before, after) of stored offsets seen moving backwards
    regressions: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    last: dict[tuple[str, str, int], int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Sample until ``stop``."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and take one last sample."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self.sample_once()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_once()

    def sample_once(self) -> None:
        """One consistent sample; a database that is down skips it."""
        try:
            with psycopg.connect(
                self.url, application_name="oncepipe-chaos-monitor", connect_timeout=3
            ) as conn:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                with conn.transaction():
                    params = {"groups": self.groups}
                    orphans = [(g, e) for g, e in conn.execute(_ORPHANS, params).fetchall()]
                    stored = conn.execute(_OFFSETS, params).fetchall()
        except psycopg.Error:
            self.skipped += 1
            return
        self.samples += 1
        self.orphans.extend(o for o in orphans if o not in self.orphans)
        for group, topic, partition, offset in stored:
            before = self.last.get((group, topic, partition))
            if before is not None and offset < before:
                self.regressions.append((group, topic, partition, before, offset))
            self.last[(group, topic, partition)] = offset
