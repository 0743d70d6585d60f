"""Queue mode: a worker of a Kafka share group, exactly-once effects through the inbox.

A share group hands each record of a partition to one member at a time, under a lock, and
hands it out again when the lock expires or the member releases it. Nothing here stores
offsets: the share partition's state is the cursor. A record handed out twice is only a
duplicate, and the inbox absorbs it (its row commits in the same transaction as the effects).

Per poll, in this order, each group of records in ONE PostgreSQL transaction (the batch path
of ``apply_batch``: inbox rows, handler, derived events and dead letters into the outbox):

1. records on their last allowed delivery (delivery count at the group's limit): dead-lettered
   with stage ``crash`` without running the handler (a killer would kill the worker again);
2. records delivered for the first time, together;
3. records delivered before (a crash, a lock expiry, a release): in chunks of about the
   square root of their number while far from the limit (a poll returns whole producer
   batches, and one transaction each would outlast the deadline, charging the rest one more
   delivery poll after poll), one per transaction at the last two deliveries before it, so a
   killer or a slow record cannot push innocent neighbours to the limit.

After COMMIT the group's records are accepted at once (acknowledgements sent), after a failed
transaction released. No transaction starts once the poll's batch deadline (below the lock
duration) passed: the records left are released, to be taken by a member with time for them.
A transaction that runs late (a stall past the lock) still commits: its records may have gone
to another member meanwhile, and whichever commits second finds the inbox rows of the first.

Public names: ``QueueRuntime``, ``queue_retry_policy``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from consumers.attempts import CrashLoopError, crash_rejection
from consumers.backoff import Backoff, sleep_unless
from consumers.batch import BatchResult, apply_batch
from consumers.classify import is_transient
from consumers.context import OutboxSink
from consumers.decoding import Decoder, Rejected, decode_records
from consumers.events import Coordinates
from consumers.failures import FailureLog
from consumers.inbox_partitions import Maintainer
from consumers.queue_counts import QueueCounts
from consumers.queue_settings import GroupLimits, QueueSettings
from consumers.registry import Handler
from consumers.retry_policy import RetryPolicy
from consumers.settings import ConsumerSettings
from oncepipe.db import connect
from oncepipe.errors import BrokerError, ConfigError, FencedError, RetriableError, first_line
from oncepipe.hooks import NO_HOOKS, BatchFailed, Hooks
from oncepipe.kafka import (
    KafkaShareConsumer,
    Record,
    create_admin,
    delivery_count,
    records_without_errors,
    set_share_group_configs,
    share_group_configs,
)
from oncepipe.logging import get_logger
from oncepipe.settings import Settings

__all__ = ["QueueRuntime", "queue_retry_policy"]

_PUBLISH_EVERY_S = 1.0
_WAIT_OUT = frozenset({"_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN"})


class QueueRuntime:
    """One member of a share group; any number of them share a topic's partitions."""

    def __init__(
        self,
        settings: Settings,
        consumer_settings: ConsumerSettings,
        queue_settings: QueueSettings,
        *,
        decoder: Decoder,
        handler: Handler,
        sink: OutboxSink | None = None,
        hooks: Hooks = NO_HOOKS,
        counts: QueueCounts | None = None,
    ) -> None:
        self._settings = settings
        self._config = consumer_settings
        self._queue = queue_settings
        self._group = consumer_settings.group
        self._decoder = decoder
        self._handler = handler
        self._sink = sink
        self._hooks = hooks
        self.counts = counts or QueueCounts(self._group)
        self._stop_asked = False
        self._backoff = Backoff(consumer_settings.retry_initial_s, consumer_settings.retry_max_s)
        self._conn: psycopg.Connection[Any] | None = None
        self._consumer: KafkaShareConsumer | None = None
        self._log = get_logger("consumer", consumer_group=self._group, mode="queue")
        # No owner token: a share group has no partition owners, every member counts.
        self._failures = FailureLog(
            lambda: connect(settings, f"oncepipe-consumer-failures:{self._group}"), self._group
        )
        self._policy = RetryPolicy(
            self._failures,
            max_attempts=consumer_settings.max_attempts,
            unknown_schema_grace_s=consumer_settings.unknown_schema_grace_s,
            hooks=hooks,
        )
        self.limits: GroupLimits | None = None
        # This worker's row of oncepipe.queue_members: its client id and a random suffix.
        self._member = f"{consumer_settings.client_id}-{uuid.uuid4().hex[:8]}"
        self._published = 0.0
        self._transient = False  # the last transaction failed on a transient error

    def stop(self) -> None:
        """Finish the poll in flight, acknowledge it, leave the group and return.

        Safe in a signal handler: it takes no lock (see ``consumers.backoff.sleep_unless``).
        """
        self._stop_asked = True

    def run(self) -> None:
        """Configure the group, join it and consume until ``stop``."""
        if self._config.on_poison == "park-key":
            raise ConfigError(
                "--on-poison park-key needs per-key order, which queue mode gives up: use "
                "--on-poison skip with --mode queue, or --mode partition"
            )
        self.limits = self._configure_group()
        if self.limits is None:
            self._log.info("stopped before starting", reason="the brokers did not answer")
            return
        self._policy = queue_retry_policy(self._failures, self._config, self.limits, self._hooks)
        try:
            self._connection()
        except RetriableError as exc:
            self._log.info("stopped before starting", reason=str(exc))
            return
        self._consumer = KafkaShareConsumer.create(
            self._settings,
            self._group,
            {"client.id": self._config.client_id, "max.poll.records": self._config.batch_size},
        )
        self._consumer.subscribe(self._config.topics)
        self._log.info(
            "queue consumer started",
            preview="librdkafka's share consumer is a preview",
            topics=list(self._config.topics),
            lock_duration_s=self.limits.lock_duration_s,
            delivery_limit=self.limits.delivery_limit,
            batch_deadline_s=self.limits.batch_deadline_s,
        )
        maintainer = self._start_maintainer()
        try:
            while not self._stop_asked:
                self._step(self.limits)
        finally:
            if maintainer is not None:
                maintainer.stop()
            self._close()

    def _start_maintainer(self) -> Maintainer | None:
        """The inbox partitions' watch (it warns before they run out), unless turned off."""
        return Maintainer.for_worker(self._settings, self._config, self._log)

    def _configure_group(self) -> GroupLimits | None:
        """Set the group configs queue mode needs (logged), then read what the group applies.

        None when asked to stop while the brokers did not answer.
        """
        admin = create_admin(self._settings)
        while True:
            try:
                if self._queue.configure_group:
                    wanted = self._queue.group_configs()
                    set_share_group_configs(admin, self._group, wanted)
                    self._log.info("share group configured", set=wanted)
                return GroupLimits.of(share_group_configs(admin, self._group), self._queue)
            except BrokerError as exc:
                # A broker restarting (no controller yet, timed out) is waited out, not fatal.
                if not (exc.retriable or exc.name in _WAIT_OUT):
                    raise
                self._pause(first_line(exc))
                if self._stop_asked:
                    return None

    # -- the loop -------------------------------------------------------------------------

    def _step(self, limits: GroupLimits) -> None:
        self._hooks.heartbeat()
        polled = self._kafka().poll(self._config.batch_timeout_s)
        deadline = time.monotonic() + limits.batch_deadline_s
        # The crash dead letters are tried until the locks end, past the deadline and a stop:
        # released at their last delivery, Kafka would archive them without a dead letter.
        locks_end = deadline - limits.batch_deadline_s + limits.lock_duration_s
        records = records_without_errors(polled, self._log, "consuming from the share group")
        if not records:
            self._publish()  # an idle member shows in `oncepipe status` too
            return
        self.counts.add("acquired", len(records))
        counts = [delivery_count(r) for r in records]
        self.counts.add("redelivered", sum(1 for c in counts if c > 1))
        paired = list(zip(records, counts, strict=True))
        last = [r for r, c in paired if c >= limits.delivery_limit]
        fresh = [r for r, c in paired if c == 1 < limits.delivery_limit]
        again = [(r, c) for r, c in paired if 1 < c < limits.delivery_limit]
        if last:
            self._log.warning(
                "records on their last delivery, dead-lettered without the handler",
                records=[[r.topic(), r.partition(), r.offset()] for r in last],
            )
        groups: list[tuple[list[Record], list[Rejected]]] = []
        if last:
            groups.append(([], [_crash(r, limits.delivery_limit) for r in last]))
        # A poll may return more than the batch size (the client treats it as a hint).
        size = self._config.batch_size
        groups += [(fresh[n : n + size], []) for n in range(0, len(fresh), size)]
        groups += [(chunk, []) for chunk in _redelivered_groups(again, limits.delivery_limit)]
        rest: list[Record] = []
        for n, (todo, killers) in enumerate(groups):
            mine = todo or last
            # Past the deadline (or asked to stop) the rest goes back at once, its locks held.
            if n > 0 and (self._stop_asked or time.monotonic() > deadline):
                rest += mine
                continue
            committed = self._apply(todo, killers)
            # Tried again while the locks hold: after a transient failure (PostgreSQL down or
            # read-only, a session dropped), as each release charges every record one more
            # delivery and an outage of seconds would push innocent ones to the limit; and
            # the crash dead letters (no handler runs), which Kafka, released at their last
            # delivery, would archive without a dead letter.
            while not committed and (killers or self._transient):
                if time.monotonic() > (locks_end if killers else deadline):
                    break
                if self._stop_asked:
                    if not killers:
                        break
                    time.sleep(0.2)  # the backoff's wait returns at once once stopping
                committed = self._apply(todo, killers)
            # Acknowledged at once: should the next record kill the worker, these are done.
            if committed:
                self._acknowledge(mine, [])
            else:
                self._acknowledge([], mine)
        if rest:
            self._acknowledge([], rest)
        self._publish()

    def _publish(self, *, left: bool = False) -> None:
        """Report the counts in PostgreSQL, at most once a second (best effort)."""
        now = time.monotonic()
        if not left and now - self._published < _PUBLISH_EVERY_S:
            return
        self._published = now
        try:
            self.counts.publish(self._connection(), self._member, left=left)
        except (psycopg.Error, RetriableError) as exc:
            self._log.debug("queue counts not published", reason=first_line(exc))
            self._drop_sessions()  # the next batch starts on a new session

    def _apply(self, records: Sequence[Record], killers: Sequence[Rejected]) -> bool:
        """One transaction for ``records`` (and ``killers``); True once committed."""
        self._transient = False
        try:
            decoded = decode_records(self._decoder, records)
        except psycopg.OperationalError as exc:
            self._log.warning("decoding failed, will retry", reason=str(exc).strip())
            self._pause("decoding failed")
            self._transient = True
            return False
        decoded.rejected = sorted(
            [*decoded.rejected, *killers], key=lambda r: (r.topic, r.partition, r.offset)
        )
        self._hooks.point("consumer.before_transaction")
        # The stored offsets are not used: "positions" one past each partition's last record
        # make the batch move none (and a failing event alone is dead-lettered, not held).
        positions: dict[Coordinates, int | None] = {}
        for where, offset in [(e.coordinates, e.offset) for e in decoded.events] + [
            (r.coordinates, r.offset) for r in decoded.rejected
        ]:
            positions[where] = max(offset + 1, positions.get(where) or 0)
        try:
            result = apply_batch(
                self._connection(),
                settings=self._settings,
                group=self._group,
                events=decoded.events,
                rejected=decoded.rejected,
                positions=positions,
                handler=self._handler,
                policy=self._policy,
                sink=self._sink,
                hooks=self._hooks,
            )
        except FencedError:
            # Only a held record (a failure that may still pass) moves an offset here: the
            # records go back and come again, alone.
            self._log.warning("batch held a record, records released", events=len(records))
            return False
        except Exception as exc:
            if not is_transient(exc):
                if isinstance(exc, psycopg.ProgrammingError):
                    raise ConfigError(
                        f"a statement of the batch failed with SQLSTATE {exc.sqlstate} "
                        f"({type(exc).__name__}): fix the handler or run oncepipe migrate"
                    ) from exc
                raise
            self._log.warning(
                "batch failed, will retry", reason=first_line(exc),
                error_class=type(exc).__name__, events=len(records),
            )  # fmt: skip
            self._hooks.batch_failed(BatchFailed(self._group, "transient", len(records)))
            self._drop_sessions()
            self._pause("batch failed")
            self._transient = True
            return False
        self._backoff.reset()
        self._hooks.point("consumer.after_commit")
        self._committed(result, records)
        if result.retrying:
            # RetryLater has no tier table here: the records go back and come again (alone);
            # those this batch applied come back as duplicates the inbox absorbs.
            self._log.info("events deferred (RetryLater), records released", events=len(records))
            return False
        return True

    def _committed(self, result: BatchResult, records: Sequence[Record]) -> None:
        self._log.info(
            "batch committed",
            ranges=[[r.topic(), r.partition(), r.offset(), r.offset()] for r in records],
            events=result.events,
            applied=result.applied,
            duplicates=result.duplicates,
            emitted=result.emitted,
            dead_letters=result.dead_letters,
        )

    def _acknowledge(self, accepted: Sequence[Record], released: Sequence[Record]) -> None:
        consumer = self._kafka()
        for record in accepted:
            consumer.accept(record)
        for record in released:
            consumer.release(record)
        refused = consumer.commit(self._config.close_timeout_s)
        self.counts.add("acknowledged", len(accepted))
        self.counts.add("released", len(released))
        if refused:
            # The locks expired first: the records went to another member, whose inbox
            # claims see the rows this worker committed.
            self.counts.add("refused", len(refused))
            self._log.warning("acknowledgements refused", partitions=refused)
        self._log.debug(
            "records acknowledged", now_accepted=len(accepted), now_released=len(released),
            **self.counts.snapshot(),
        )  # fmt: skip

    # -- plumbing -------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        while self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = connect(self._settings, f"oncepipe-consumer:{self._group}")
            except RetriableError as exc:
                self._pause(str(exc))
                if self._stop_asked:
                    raise
        return self._conn

    def _drop_sessions(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
        self._failures.close()

    def _pause(self, reason: str) -> None:
        delay = self._backoff.next_delay()
        self._log.warning("waiting before retry", reason=reason, delay_s=round(delay, 3))
        self._hooks.heartbeat()
        sleep_unless(lambda: self._stop_asked, delay)
        self._hooks.heartbeat()

    def _kafka(self) -> KafkaShareConsumer:
        if self._consumer is None:
            raise RuntimeError("the share consumer exists only while the worker runs")
        return self._consumer

    def _close(self) -> None:
        if self._consumer is not None:
            bound = self._config.close_timeout_s
            try:
                if not self._consumer.close(bound):
                    self._log.warning(
                        "left the share group without a clean close",
                        reason=f"no answer within {bound:g}s (ONCEPIPE_CONSUMER_CLOSE_TIMEOUT_S);"
                        " records not acknowledged go back when their locks expire",
                    )
            except Exception as exc:  # noqa: BLE001 - leaving is best effort; locks expire
                self._log.warning("share consumer close failed", reason=str(exc))
            self._consumer = None
        self._failures.close()
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            self._publish(left=True)
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._log.info("consumer stopped", **self.counts.snapshot())


def queue_retry_policy(
    failures: FailureLog, config: ConsumerSettings, limits: GroupLimits, hooks: Hooks
) -> RetryPolicy:
    """The retry policy of queue mode: every hold must end below the delivery limit.

    A held record (an unexpected decode failure, an unknown writer schema) is released, and
    the share group hands it out again at once, one delivery more: a hold cannot wait out the
    schema grace here (the deliveries would run out within a second, ending as a ``crash``
    dead letter the record did not earn), and more attempts than deliveries would do the same.
    So an unknown schema is dead-lettered at its first failure (``oncepipe dlq replay`` once
    the schema is registered), and an unexpected failure after ``delivery limit - 1``
    attempts at most.
    """
    return RetryPolicy(
        failures,
        max_attempts=min(config.max_attempts, limits.delivery_limit - 1),
        unknown_schema_grace_s=0.0,
        hooks=hooks,
    )


def _redelivered_groups(again: Sequence[tuple[Record, int]], limit: int) -> list[list[Record]]:
    """The transactions of a poll's records delivered before: whole chunks early, alone late.

    A poll hands out whole producer batches (``max.poll.records`` is only a hint: a poll asked
    for 50 returns a batch of 1,000, redelivered ones too), so the records of a worker that died
    come back together. One transaction each (about 15 a second on a loaded machine) would
    outlast the batch deadline, and each record left is released, charged one more delivery,
    poll after poll, until innocent ones reach the limit. So below the last two deliveries
    before the limit (``count < limit - 2``) the records of one delivery count run in
    chunks of ``ceil(sqrt(n))``: a poll of 1,000 in 32 transactions. A killer
    among them charges its chunk and the records after it, which the alternating order puts
    first next time; from ``limit - 2`` on they run alone, so its neighbours, acknowledged on
    one side in one round and on the other in the next, never reach the limit.
    """
    ordered = _suspects_in_turn(again)
    groups: list[list[Record]] = []
    for count in sorted({c for _, c in ordered}):
        records = [r for r, c in ordered if c == count]
        size = math.isqrt(len(records) - 1) + 1 if count < limit - 2 else 1  # ceil(sqrt n)
        groups += [records[n : n + size] for n in range(0, len(records), size)]
    return groups


def _suspects_in_turn(again: Sequence[tuple[Record, int]]) -> list[tuple[Record, int]]:
    """Records delivered before, in the order that spares innocent neighbours of a killer.

    A worker that dies on a record charges one more delivery to every record of its poll not
    acknowledged yet. Records of a batch that died together share a delivery count; taking
    them by offset, ascending on even counts and descending on odd ones, puts the records
    charged behind the killer in one round ahead of it in the next: they are acknowledged
    before it runs again and stay a delivery behind it, so a delivery limit of 4 or more
    dead-letters the killer alone (after 3 deaths: one in its batch, two alone).
    """
    return sorted(
        again,
        key=lambda pair: (
            pair[1], pair[0].topic(), pair[0].partition(),
            pair[0].offset() if pair[1] % 2 == 0 else -pair[0].offset(),
        ),
    )  # fmt: skip


def _crash(record: Record, limit: int) -> Rejected:
    """A record on its last allowed delivery, as a ``crash`` rejection (handler not run)."""
    return crash_rejection(
        record,
        CrashLoopError(
            f"the share group delivered this record {limit} times without an acknowledgement "
            "(the worker died, stalled past the lock, or released it each time); "
            "dead-lettered without running the handler"
        ),
    )
