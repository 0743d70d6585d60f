"""The relay worker: publishes the outbox to Kafka, in order, and marks rows after the ack.

1. Take the leader lock (a session advisory lock): only one relay per database publishes, so
   one key's rows leave in id order even when several relays run; the others stand by.
2. Read unpublished rows in id order. Never "id > last seen": ids commit out of order, and a
   row committed late (a gap) is simply read on the next pass.
3. Publish them with the idempotent producer and wait for every delivery report.
4. Mark the acknowledged rows published. A crash between 3 and 4 re-sends those rows on
   restart: the producer's idempotence does not span restarts, the consumer's inbox absorbs them.
5. Sleep until NOTIFY (sent at the outbox transaction's COMMIT) or the poll interval.

Published rows older than the retention are deleted in small chunks. ``request_stop`` (wired to
SIGTERM) ends the loop after the batch in flight is published and marked.

Public names: ``Relay``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from oncepipe.crash import crash_point
from oncepipe.db import connect
from oncepipe.errors import DatabaseUnavailableError
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from producers import outbox
from producers.producer import Delivery, EventProducer, OutgoingRecord
from producers.settings import ProducerSettings, RelaySettings

__all__ = ["Relay"]

log = get_logger("relay")
CLEANUP_CHUNK = 10_000
NOTIFY_CHANNEL = "oncepipe_outbox"
# Errors that mean "the broker is away", whatever their retriable flag says.
BROKER_AWAY = frozenset({"_MSG_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN"})


class Relay:
    """Publish outbox rows until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        relay_settings: RelaySettings,
        producer_settings: ProducerSettings,
    ) -> None:
        self._settings = settings
        self._relay = relay_settings
        self._producer = EventProducer(settings, producer_settings)
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._leader = False
        self._next_cleanup = 0.0
        self.published = 0

    def request_stop(self) -> None:
        """Finish the batch in flight, then return from ``run``."""
        self._stop.set()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Publish until ``request_stop``; database outages are retried with backoff."""
        log.info("relay starting", listen=self._relay.listen, batch_size=self._relay.batch_size)
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(DatabaseUnavailableError),
                wait=wait_random_exponential(multiplier=0.2, max=10),
                stop=lambda _: self._stop.is_set(),
                before_sleep=lambda state: log.warning(
                    "database unavailable, retrying",
                    error=str(state.outcome.exception()) if state.outcome else None,
                ),
                reraise=True,
            ):
                with attempt:
                    self._loop()
        except DatabaseUnavailableError:
            if not self._stop.is_set():
                raise
        finally:
            self._close_connections()
            undelivered = self._producer.close()
            log.info("relay stopped", published=self.published, undelivered=undelivered)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._ensure_leader():
                    self._stop.wait(self._relay.poll_interval_s)
                    continue
                published = self.run_once()
                self._maybe_cleanup()
                if published < self._relay.batch_size:
                    self._wait_for_work()
        except psycopg.OperationalError as exc:
            self._close_connections()
            raise DatabaseUnavailableError(f"relay lost its database connection: {exc}") from exc

    def run_once(self) -> int:
        """Publish one batch of pending rows; return how many were acknowledged."""
        conn = self._connection()
        rows = outbox.fetch_pending(conn, self._relay.batch_size)
        if not rows:
            return 0
        records = [OutgoingRecord(r.id, r.topic, r.key, r.value, r.headers) for r in rows]
        deliveries = self._producer.send_all(records)
        crash_point(self._settings, "relay.after_ack")
        acked = [d.ref for d in deliveries if d.ok]
        outbox.mark_published(conn, acked)
        crash_point(self._settings, "relay.after_mark")
        self._handle_failures(conn, rows, deliveries)
        self.published += len(acked)
        log.debug("published batch", rows=len(rows), acked=len(acked))
        return len(acked)

    def _handle_failures(
        self,
        conn: psycopg.Connection[Any],
        rows: list[outbox.OutboxRow],
        deliveries: list[Delivery],
    ) -> None:
        attempts = {row.id: row.attempts for row in rows}
        failed = [(d.ref, d.error) for d in deliveries if d.error is not None]
        for ref, error in failed:
            if error.retriable or error.name in BROKER_AWAY:
                continue  # the broker is away: the row stays queued, nothing is counted
            park = attempts[ref] + 1 >= self._relay.max_attempts
            outbox.record_failure(conn, ref, str(error), park=park)
            log.error("broker refused outbox row", row_id=ref, error=str(error), parked=park)
        if failed:
            # Back off before the next pass instead of spinning against an unavailable broker.
            self._stop.wait(min(5.0, self._relay.poll_interval_s * 2))

    # -- connections and leadership -------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._settings, "oncepipe-relay", autocommit=True)
            self._leader = False
        return self._conn

    def _ensure_leader(self) -> bool:
        if self._leader:
            return True
        row = (
            self._connection()
            .execute("SELECT pg_try_advisory_lock(%s)", (self._relay.leader_lock_id,))
            .fetchone()
        )
        self._leader = bool(row and row[0])
        if self._leader:
            log.info("relay is the leader; publishing")
        return self._leader

    def _wait_for_work(self) -> None:
        if not self._relay.listen:
            self._stop.wait(self._relay.poll_interval_s)
            return
        if self._listener is None or self._listener.closed:
            self._listener = connect(self._settings, "oncepipe-relay-listen", autocommit=True)
            self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        for _ in self._listener.notifies(timeout=self._relay.poll_interval_s, stop_after=1):
            break

    def _maybe_cleanup(self) -> None:
        now = time.monotonic()
        if now < self._next_cleanup:
            return
        self._next_cleanup = now + self._relay.cleanup_interval_s
        total = 0
        while not self._stop.is_set():
            deleted = outbox.delete_published(
                self._connection(), self._relay.retention_s, CLEANUP_CHUNK
            )
            total += deleted
            if deleted < CLEANUP_CHUNK:
                break
        if total:
            log.info("deleted published outbox rows past retention", rows=total)

    def _close_connections(self) -> None:
        for conn in (self._conn, self._listener):
            if conn is not None and not conn.closed:
                conn.close()
        self._conn = self._listener = None
        self._leader = False
