"""The relay worker: publishes the outbox to Kafka, in order, and marks rows after the ack.

1. Renew this relay's shard leases (``producers.shards``): the outbox is split into 16 shards
   by a hash of the key, each leased by one relay at a time, so several relays publish at once
   and one key's rows still leave from one relay in id order. A relay takes its fair share of
   shards, gives back the excess when another joins, and takes over the shards of a relay
   whose lease ran out (dead or stalled).
2. Read unpublished rows of the owned shards in id order, minus the rows of held partitions.
   Never "id > last seen": ids commit out of order, and a row committed late (a gap) is read
   on the next pass.
3. Choose each row's partition (the key's, as librdkafka would; a keyless row avoids held
   partitions). A row for a held partition is held too: it must not overtake the rows before
   it. A record over its topic's limit is parked (a dead letter first loses failure context).
4. Publish with the idempotent producer and wait for the delivery reports, at most the pass
   timeout: what is still unanswered then is purged (a partition without a leader or without
   enough in-sync replicas must not hold every other partition for delivery.timeout.ms).
5. Mark the acknowledged rows published, per partition only up to its first unacknowledged
   row; that row and every later row of its partition are held with a growing backoff. A
   crash between 4 and 5 re-sends those rows on restart: the producer's idempotence does not
   span restarts, the consumer's inbox absorbs them. So does a relay stalled in a pass past
   its lease: the shard's next owner re-reads every row that pass did not mark.
6. Sleep until NOTIFY (sent at the outbox transaction's COMMIT) or the poll interval (at most
   a third of the lease, so leases are renewed in time). The relay LISTENs before its first
   pass, so a row committed between a pass's read and the wait still wakes it.

Published rows older than the retention are deleted in small chunks. ``request_stop`` (wired to
SIGTERM) ends the loop after the batch in flight is published and marked, and releases the
shards at once.

Public names: ``Relay``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from oncepipe import tracing
from oncepipe.db import connect, require_session, wrap_as_unavailable
from oncepipe.errors import BrokerError, DatabaseUnavailableError
from oncepipe.hooks import NO_HOOKS, Hooks, RowsPublished
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from producers import outbox
from producers.partitioner import choose_partition
from producers.producer import Delivery, EventProducer, OutgoingRecord
from producers.recordsize import HeaderValue, fit_dead_letter, record_size, surely_fits
from producers.settings import ProducerSettings, RelaySettings
from producers.shards import ShardLeases, new_relay_id
from schemas import dlq_topic_for

__all__ = ["Relay"]

log = get_logger("relay")
CLEANUP_CHUNK = 10_000
NOTIFY_CHANNEL = "oncepipe_outbox"
# Errors that mean "the broker or partition is away", whatever their retriable flag says
# (a purged record was not answered within the pass timeout).
BROKER_AWAY = frozenset(
    {"_MSG_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_PURGE_QUEUE", "_PURGE_INFLIGHT"}
)
DLQ_SUFFIX = dlq_topic_for("")
METADATA_RETRY_S = 2.0
METADATA_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class _Outgoing:
    """A row of this pass and the record it is sent as."""

    row: outbox.OutboxRow
    record: OutgoingRecord


class Relay:
    """Publish outbox rows until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        relay_settings: RelaySettings,
        producer_settings: ProducerSettings,
        *,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        if relay_settings.listen:
            require_session(settings, "the relay", "LISTEN (or run it with --no-listen)")
        self._settings = settings
        self._hooks = hooks
        self._relay = relay_settings
        # The client admits the largest dead letter; event rows are checked against the
        # event limit before sending (see _fit).
        self._producer = EventProducer(settings, producer_settings.for_dead_letters())
        self._event_limit = producer_settings.message_max_bytes
        self._dead_letter_limit = producer_settings.dead_letter_max_bytes
        self._counts: dict[str, int] = {}
        self._counts_read_at = -relay_settings.metadata_max_age_s
        self._failed_passes: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._leases = ShardLeases(new_relay_id(), relay_settings.lease_s)
        self._more = False
        self._next_cleanup = 0.0
        self.published = 0

    @property
    def relay_id(self) -> str:
        """The relay's name in ``oncepipe.relay_shards`` (host:pid:random)."""
        return self._leases.relay_id

    @property
    def shards(self) -> frozenset[int]:
        """The shards this relay held at its last renewal."""
        return self._leases.owned

    def request_stop(self) -> None:
        """Finish the batch in flight, then return from ``run``."""
        self._stop.set()

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Publish until ``request_stop``; database outages are retried with backoff."""
        log.info(
            "relay starting",
            relay_id=self.relay_id,
            listen=self._relay.listen,
            batch_size=self._relay.batch_size,
            lease_s=self._relay.lease_s,
        )
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
            self._leave()
            self._close_connections()
            undelivered = self._producer.close()
            log.info("relay stopped", published=self.published, undelivered=undelivered)

    def _loop(self) -> None:
        # A lost session (a read-only fail-over node included) is retried by ``run``.
        with wrap_as_unavailable(
            lambda exc: f"relay lost its database session: {exc}", cleanup=self._close_connections
        ):
            while not self._stop.is_set():
                self._hooks.heartbeat()
                self._listen()
                self.run_once()
                self._maybe_cleanup()
                if not self._more:
                    self._wait_for_work()

    def run_once(self) -> int:
        """Publish one batch of the owned shards' pending rows; return how many were acked.

        Renews the shard leases first (claiming a fair share on the first call).
        """
        conn = self._connection()
        self._renew(conn)
        self._more = False
        if not self._leases.owned:
            return 0
        rows, held = outbox.fetch_ready(conn, self._relay.batch_size, sorted(self._leases.owned))
        if not rows:
            return 0
        self._more = self._maybe_more(rows)
        batch = self._plan(conn, rows, held)
        started = time.monotonic()
        spans = [tracing.start_send(item.row.topic, item.row.headers) for item in batch]
        deliveries = self._producer.send_all(
            [item.record for item in batch], timeout=self._relay.pass_timeout_s
        )
        seconds = time.monotonic() - started
        for span, delivery in zip(spans, deliveries, strict=True):
            error = None if delivery.error is None else str(delivery.error)
            tracing.end_send(span, delivery.partition, delivery.offset, error)
        self._hooks.point("relay.after_ack")
        acked, holds = self._sort_deliveries(conn, batch, deliveries)
        outbox.mark_published(conn, acked)
        self._hooks.point("relay.after_mark")
        outbox.hold(conn, holds)
        self.published += len(acked)
        self._hooks.rows_published(RowsPublished(len(acked), len(holds), seconds))
        log.debug("published batch", rows=len(rows), acked=len(acked), held=len(holds))
        return len(acked)

    def _maybe_more(self, rows: list[tuple[outbox.OutboxRow, int | None]]) -> bool:
        """Whether the outbox may have more rows for this relay now (see outbox.fetch_ready)."""
        owned = len(self._leases.owned)
        if len(rows) >= self._relay.batch_size or owned >= outbox.SHARDS:
            return len(rows) >= self._relay.batch_size
        per_shard = -(-self._relay.batch_size // owned)
        return max(Counter(row.shard for row, _ in rows).values()) >= per_shard

    # -- one pass: where each row goes, and what its answer means -------------------------
    def _plan(
        self,
        conn: psycopg.Connection[Any],
        rows: list[tuple[outbox.OutboxRow, int | None]],
        held: outbox.Held,
    ) -> list[_Outgoing]:
        """Records to send now; rows of held partitions are held too, oversized ones parked."""
        counts = self._partition_counts({row.topic for row, _ in rows})
        held_by_topic: dict[str, set[int]] = defaultdict(set)
        for topic, partition in held:
            held_by_topic[topic].add(partition)
        batch: list[_Outgoing] = []
        deferred: list[tuple[int, int, float]] = []
        for row, stored in rows:
            headers = self._fit(conn, row)
            if headers is None:
                continue
            count = counts.get(row.topic)
            partition = stored if stored is not None and stored >= 0 else -1
            if count and not 0 <= partition < count:
                partition = choose_partition(row.key, count, held_by_topic[row.topic])
            wait = held.get((row.topic, partition))
            if wait is None and (row.topic, -1) in held:
                # Rows sent with no partition known (no metadata for the topic) are held as
                # partition -1: any of the topic's keys may be among them.
                partition, wait = -1, held[(row.topic, -1)]
            if wait is not None:  # a later row of a held partition must not overtake it
                deferred.append((row.id, partition, wait))
                continue
            record = OutgoingRecord(row.id, row.topic, row.key, row.value, headers, partition)
            batch.append(_Outgoing(row, record))
        outbox.hold(conn, deferred)
        return batch

    def _fit(
        self, conn: psycopg.Connection[Any], row: outbox.OutboxRow
    ) -> Sequence[tuple[str, HeaderValue]] | None:
        """The row's headers if the record fits its topic; else park it and return None."""
        dead_letter = row.topic.endswith(DLQ_SUFFIX)
        limit = self._dead_letter_limit if dead_letter else self._event_limit
        if surely_fits(row.key, row.value, row.headers, limit):
            return row.headers
        headers: Sequence[tuple[str, HeaderValue]] | None = row.headers
        if dead_letter:
            headers = fit_dead_letter(row.key, row.value, row.headers, limit)
        elif record_size(row.key, row.value, row.headers) > limit:
            headers = None
        if headers is None:
            size = record_size(row.key, row.value, row.headers)
            error = (
                f"record of {size} bytes is over the {limit} bytes the relay sends to "
                f"{row.topic}: raise ONCEPIPE_PRODUCER_MESSAGE_MAX_BYTES (and the topic's "
                "max.message.bytes), then clear failed_at to send it"
            )
            outbox.record_failure(conn, row.id, error, park=True)
            log.error("outbox row too large; parked", row_id=row.id, topic=row.topic, size=size)
        elif headers is not row.headers and headers != row.headers:
            log.warning("dead letter trimmed to fit", row_id=row.id, topic=row.topic)
        return headers

    def _sort_deliveries(
        self,
        conn: psycopg.Connection[Any],
        batch: list[_Outgoing],
        deliveries: list[Delivery],
    ) -> tuple[list[int], list[tuple[int, int, float]]]:
        """Rows to mark published, and rows to hold: per partition, nothing after a failure.

        A partition's rows are walked in id order; from its first unacknowledged row on, every
        row is held (even acknowledged ones: marking them would let them overtake the failed
        row; their copies are absorbed by the consumer's inbox). A row parked for a permanent
        refusal holds nothing back.
        """
        by_partition: dict[tuple[str, int], list[tuple[_Outgoing, Delivery]]] = defaultdict(list)
        for item, delivery in zip(batch, deliveries, strict=True):
            by_partition[(item.record.topic, item.record.partition)].append((item, delivery))
        acked: list[int] = []
        holds: list[tuple[int, int, float]] = []
        for (topic, partition), answers in by_partition.items():
            stuck: list[int] = []
            first_error: BrokerError | None = None
            for item, delivery in answers:
                if stuck:
                    stuck.append(item.row.id)
                elif delivery.error is None:
                    acked.append(item.row.id)
                elif not self._parked(conn, item.row, delivery.error):
                    stuck.append(item.row.id)
                    first_error = delivery.error
            key = (topic, partition)
            if not stuck:
                self._failed_passes.pop(key, None)
                continue
            passes = self._failed_passes[key] = self._failed_passes.get(key, 0) + 1
            delay = min(
                self._relay.retry_backoff_max_s, self._relay.retry_backoff_s * 2 ** (passes - 1)
            )
            holds += [(row_id, partition, delay) for row_id in stuck]
            log.warning(
                "partition not acknowledged; its rows are held",
                topic=topic,
                partition=partition,
                rows=len(stuck),
                seconds=delay,
                error=str(first_error),
            )
        return acked, holds

    def _parked(
        self, conn: psycopg.Connection[Any], row: outbox.OutboxRow, error: BrokerError
    ) -> bool:
        """Count a refusal that is the record's fault; True when that parked the row."""
        if error.retriable or error.name in BROKER_AWAY:
            return False  # the broker or partition is away: nothing is counted
        park = row.attempts + 1 >= self._relay.max_attempts
        outbox.record_failure(conn, row.id, str(error), park=park)
        log.error("broker refused outbox row", row_id=row.id, error=str(error), parked=park)
        return park

    def _partition_counts(self, topics: set[str]) -> dict[str, int]:
        """Partitions per topic, from metadata read at most every few seconds."""
        now = time.monotonic()
        stale = now - self._counts_read_at > self._relay.metadata_max_age_s
        missing = not topics <= self._counts.keys()
        if stale or (missing and now - self._counts_read_at > METADATA_RETRY_S):
            try:
                counts = self._producer.partition_counts(timeout=METADATA_TIMEOUT_S)
                _log_growth(self._counts, counts)
                self._counts = counts
            except BrokerError as exc:
                log.warning("cluster metadata unavailable; using what is known", error=str(exc))
            self._counts_read_at = now
        return self._counts

    # -- connections and leadership -------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._settings, "oncepipe-relay", autocommit=True)
        return self._conn

    def _renew(self, conn: psycopg.Connection[Any]) -> None:
        """Renew the leases; log every shard claimed, given back or lost to another relay."""
        change = self._leases.renew(conn)
        if change.claimed or change.released or change.lost:
            log.info(
                "relay shards changed",
                relay_id=self.relay_id,
                owned=sorted(self._leases.owned),
                claimed=sorted(change.claimed),
                released=sorted(change.released),
                lost=sorted(change.lost),
            )

    def _leave(self) -> None:
        """Give the shards back on a clean stop, so the others need not wait for the lease."""
        if self._conn is None or self._conn.closed or not self._leases.owned:
            return
        try:
            self._leases.leave(self._conn)
            log.info("relay released its shards", relay_id=self.relay_id)
        except psycopg.Error as exc:
            log.warning("could not release shards; they expire with the lease", error=str(exc))

    def _listen(self) -> None:
        """LISTEN before the pass that precedes a wait, never after it.

        A row committed after LISTEN wakes the wait; one committed before is read by the pass.
        Listening only once the pass found nothing would leave a gap in which a commit waits
        the whole poll interval.
        """
        if self._relay.listen and (self._listener is None or self._listener.closed):
            self._listener = connect(self._settings, "oncepipe-relay-listen", autocommit=True)
            self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def _wait_for_work(self) -> None:
        timeout = min(self._relay.poll_interval_s, self._relay.lease_s / 3)
        if self._listener is None:
            self._stop.wait(timeout)
            return
        for _ in self._listener.notifies(timeout=timeout, stop_after=1):
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


def _log_growth(before: dict[str, int], after: dict[str, int]) -> None:
    """Say when a topic's partition count changed: its keys go to other partitions from now."""
    for topic, count in sorted(after.items()):
        known = before.get(topic)
        if known is not None and known != count:
            log.warning(
                "topic partition count changed; keys now hash to the new count",
                topic=topic,
                partitions_before=known,
                partitions_after=count,
            )
