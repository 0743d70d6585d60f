"""The consumer worker: consume a batch, apply it in one transaction, repeat.

Public names: ``ConsumerRuntime``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from consumers import offsets
from consumers.assignment import Assignment
from consumers.attempts import AttemptRecordError, Attempts
from consumers.backoff import Backoff, sleep_unless
from consumers.batch import BatchResult, apply_batch
from consumers.bounds import LogBounds
from consumers.classify import is_transient
from consumers.context import OutboxSink
from consumers.decoding import DecodedBatch, Decoder, Rejected, decode_records
from consumers.events import Coordinates
from consumers.failures import FailureLog, NotOwnerError, claim
from consumers.holds import Holds
from consumers.inbox_partitions import Maintainer
from consumers.parking import Parking
from consumers.rebalance import Rebalance
from consumers.registry import Handler
from consumers.retries import Retries
from consumers.retry_policy import RetryPolicy
from consumers.settings import ConsumerSettings
from oncepipe import tracing
from oncepipe.db import connect
from oncepipe.errors import ConfigError, FencedError, RetriableError, first_line
from oncepipe.hooks import NO_HOOKS, BatchFailed, Hooks
from oncepipe.kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    KafkaConsumer,
    KafkaException,
    Record,
    TopicPartition,
    records_without_errors,
)
from oncepipe.logging import get_logger
from oncepipe.settings import Settings

__all__ = ["ConsumerRuntime"]


class ConsumerRuntime:
    """One worker of a consumer group; several processes of one group share its partitions.

    Callbacks of the group protocol run only inside ``consume()`` and ``close()``, and the loop
    calls those only between batches: a batch is read by one ``consume()`` and committed or
    rolled back before the next one. So when a revoke arrives, the batch in flight is already
    committed while this worker still owned the partition (the broker hands a partition to its
    next owner only after this worker revoked it), and records of a revoked or lost partition
    that the same ``consume()`` returned are dropped unapplied. A worker that is no longer
    owner without knowing it (a stall past ``session.timeout.ms``) is refused by the offset
    compare-and-set in PostgreSQL.
    """

    def __init__(
        self,
        settings: Settings,
        consumer_settings: ConsumerSettings,
        *,
        decoder: Decoder,
        handler: Handler,
        sink: OutboxSink | None = None,
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self._settings = settings
        self._config = consumer_settings
        self._group = consumer_settings.group
        self._decoder = decoder
        self._handler = handler
        self._sink = sink
        self._hooks = hooks
        self._stop_asked = False
        self._parking = Parking(decoder) if consumer_settings.on_poison == "park-key" else None
        self._next_release_check = 0.0
        self._retries = Retries(
            decoder, consumer_settings.retry_tiers, check_s=consumer_settings.retry_check_s,
            limit=consumer_settings.batch_size,
        )  # fmt: skip
        self._assignment = Assignment()
        self._new_to_group: set[Coordinates] = set()
        self._backoff = Backoff(consumer_settings.retry_initial_s, consumer_settings.retry_max_s)
        self._conn: psycopg.Connection[Any] | None = None
        self._consumer: KafkaConsumer | None = None
        self._log = get_logger("consumer", consumer_group=self._group)
        # Claimed on every assignment: a zombie of this worker then counts no failures.
        self._owner = uuid.uuid4()
        self._failures = FailureLog(
            lambda: connect(settings, f"oncepipe-consumer-failures:{self._group}"),
            self._group,
            self._owner,
        )
        self._attempts = (
            Attempts(
                lambda: connect(settings, f"oncepipe-consumer-attempts:{self._group}"),
                self._group,
                self._owner,
                limit=consumer_settings.crash_attempts,
            )
            if consumer_settings.crash_attempts
            else None
        )
        self._retry_policy = RetryPolicy(
            self._failures,
            max_attempts=consumer_settings.max_attempts,
            unknown_schema_grace_s=consumer_settings.unknown_schema_grace_s,
            hooks=hooks,
        )
        # Held partitions: paused at a record that may still succeed, until their retry time.
        self._holds = Holds(
            consumer=self._kafka,
            assignment=self._assignment,
            seek=self._seek,
            retry_initial_s=consumer_settings.retry_initial_s,
            retry_max_s=consumer_settings.retry_max_s,
            log=self._log,
        )
        # Partitions whose stored offset is outside the log, held for the operator.
        self._bounds = LogBounds(
            consumer_settings,
            self._group,
            self._log,
            consumer=self._kafka,
            assignment=self._assignment,
            connection=self._connection,
            load_positions=self._load_positions,
            seek=self._seek,
            forget_hold=self._holds.lift,
        )
        self._rebalance = Rebalance(
            consumer=self._kafka,
            assignment=self._assignment,
            holds=self._holds,
            bounds=self._bounds,
            claim_positions=self._claim_positions,
            start_offset=self._start_offset,
            log=self._log,
        )

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, leave the group and return.

        Safe in a signal handler: it takes no lock. The handler runs on the main thread between
        two bytecodes, possibly inside a ``threading.Event.wait`` while that thread holds the
        event's own lock (not reentrant), where an ``Event.set`` would wait forever.
        """
        self._stop_asked = True

    @property
    def stopping(self) -> bool:
        """True once ``stop`` was called."""
        return self._stop_asked

    def run(self) -> None:
        """Consume until ``stop``; raises ``ConfigError`` when the handler or schema is wrong."""
        try:
            self._connection()
        except RetriableError as exc:  # raised only once asked to stop
            # Stopped while PostgreSQL was still unreachable: nothing joined, nothing held.
            self._log.info("stopped before starting", reason=str(exc))
            return
        self._consumer = KafkaConsumer.create(
            self._settings, self._group, self._config.client_config()
        )
        maintainer = self._start_maintainer()
        self._consumer.subscribe(
            self._config.topics,
            on_assign=self._rebalance.on_assign,
            on_revoke=self._rebalance.on_revoke,
            on_lost=self._rebalance.on_lost,
        )
        self._log.info("consumer started", topics=list(self._config.topics))
        try:
            while not self._stop_asked:
                self._step()
        finally:
            if maintainer is not None:
                maintainer.stop()
            self._close()

    def _start_maintainer(self) -> Maintainer | None:
        """The inbox partitions' watch (it warns before they run out), unless turned off."""
        return Maintainer.for_worker(self._settings, self._config, self._log)

    # -- the loop -------------------------------------------------------------------------

    def _step(self) -> None:
        """Read one batch, apply it, and keep the positions in step with PostgreSQL."""
        self._hooks.heartbeat()
        self._holds.resume_due()
        self._bounds.recheck()
        records = self._read()
        self._rebalance.raise_error()
        records = self._bounds.within(
            [
                r
                for r in records_without_errors(records, self._log, "consuming")
                if (r.topic(), r.partition()) not in self._holds
                and (r.topic(), r.partition()) not in self._bounds
            ]
        )
        admitted = self._assignment.admit(records)
        if len(admitted) < len(records):
            # Revoked or lost inside this consume(), or fetched before a seek: not ours to apply.
            self._log.debug("records dropped", records=len(records) - len(admitted))
        if not admitted:
            self._release_when_idle()
            return
        starts = {where: self._assignment.positions.get(where) for where in _partitions(admitted)}
        killers: list[Rejected] = []
        narrowed: set[Coordinates] = set()
        if self._attempts is not None:
            try:
                cut = self._attempts.begin(admitted, self._assignment.positions)
            except RetriableError as exc:
                self._log.warning("attempt record failed, will retry", reason=str(exc))
                self._drop_sessions()
                self._rewind(wait=True)
                return
            admitted, killers, narrowed = cut.records, cut.killers, cut.narrowed
            if narrowed:
                self._log.warning(
                    "crash loop suspected, one record per batch",
                    partitions=[[t, p] for t, p in sorted(narrowed)],
                    killers=[[k.topic, k.partition, k.offset] for k in killers],
                )
        try:
            decoded = decode_records(self._decoder, admitted)
        except psycopg.OperationalError as exc:
            # The schema store (PostgreSQL) is unreachable: transient, never poison.
            self._log.warning("decoding failed, will retry", reason=str(exc).strip())
            self._survive(starts)
            self._rewind(wait=True)
            return
        if killers:
            decoded.rejected = sorted(
                [*decoded.rejected, *killers], key=lambda r: (r.topic, r.partition, r.offset)
            )
        self._log.debug("batch read", ranges=_ranges(admitted), records=len(admitted))
        self._hooks.point("consumer.before_transaction")
        with tracing.batch_span(self._group, decoded.events):
            result = self._apply(decoded)
        if result is None:
            self._survive(starts)
            return
        self._hooks.point("consumer.after_commit")
        self._commit_to_kafka(result)
        for where in narrowed:
            # Only one record of it was read into the batch: read on from the new position.
            if where in self._assignment and where not in result.held:
                self._seek(where, self._assignment.positions.get(where))
        if result.held:
            self._survive(dict(result.held))
            self._holds.hold(result.held)

    def _read(self) -> list[Record]:
        """Records for one batch: wait for the first, then at most the linger for more.

        A batch closes with what the client has fetched once its first record is in (plus
        ``batch_linger_s``), rather than waiting ``batch_timeout_s`` to fill: below the
        throughput the worker keeps up with, waiting to fill only adds latency; above it, the
        client's queue fills whole batches anyway. Group callbacks may run in either call,
        like within one call: the records of a partition revoked meanwhile are dropped by
        ``Assignment.admit``.
        """
        kafka, size = self._kafka(), self._config.batch_size
        records = kafka.consume(1, self._config.batch_timeout_s)
        if records and size > 1:
            records += kafka.consume(size - 1, self._config.batch_linger_s)
        return records

    def _survive(self, starts: Mapping[Coordinates, int | None]) -> None:
        if self._attempts is not None:
            self._attempts.survived(starts)

    def _apply(self, decoded: DecodedBatch) -> BatchResult | None:
        """Commit one batch; on a fence or a transient failure, rewind to the stored offsets."""
        try:
            result = apply_batch(
                self._connection(),
                settings=self._settings,
                group=self._group,
                events=decoded.events,
                rejected=decoded.rejected,
                positions=self._assignment.positions,
                handler=self._handler,
                policy=self._retry_policy,
                sink=self._sink,
                hooks=self._hooks,
                parking=self._parking,
                retries=self._retries,
                before_commit=None if self._attempts is None else self._attempts.confirm,
            )
        except FencedError as exc:
            self._log.warning("batch fenced", reason=str(exc), events=len(decoded.events))
            self._hooks.batch_failed(BatchFailed(self._group, "fenced", len(decoded.events)))
            # Not the owner any more: wait for the revoke rather than retry in a hot loop.
            self._rewind(wait=isinstance(exc, NotOwnerError))
            return None
        except Exception as exc:
            if not is_transient(exc):
                if isinstance(exc, psycopg.ProgrammingError):
                    raise _handler_or_schema_error(exc) from exc
                raise
            self._log.warning(
                "attempt record failed, will retry"
                if isinstance(exc, AttemptRecordError)
                else "batch failed, will retry",
                reason=first_line(exc),
                error_class=type(exc).__name__,
                events=len(decoded.events),
            )
            self._hooks.batch_failed(BatchFailed(self._group, "transient", len(decoded.events)))
            self._drop_sessions()
            self._rewind(wait=True)
            return None
        self._assignment.advance(result.moves)
        if not result.held:
            self._backoff.reset()
        moved = ((m.topic, m.partition) for m in result.moves)
        self._holds.moved_on(where for where in moved if where not in result.held)
        quiet = not (result.moves or result.released or result.retrying or result.events)
        (self._log.debug if quiet else self._log.info)(
            "batch committed",
            ranges=[[m.topic, m.partition, m.expected, m.next_offset] for m in result.moves],
            events=result.events,
            applied=result.applied,
            duplicates=result.duplicates,
            emitted=result.emitted,
            dead_letters=result.dead_letters,
            held=[[t, p, o] for (t, p), o in sorted(result.held.items())],
            parked=result.parked,
            released=result.released,
            retrying=result.retrying,
        )
        return result

    def _release_when_idle(self) -> None:
        """With nothing to read: a batch of due retries and released parked events alone."""
        owned = list(self._assignment.positions)
        if not owned:
            return
        now = time.monotonic()
        released = self._parking is not None and now >= self._next_release_check
        if released:
            self._next_release_check = now + self._config.park_release_check_s
        if released or self._retries.check_due(owned):
            self._retries.look_next_time()
            result = self._apply(DecodedBatch())
            if result is not None and (result.events or result.dead_letters):
                self._hooks.point("consumer.after_commit")

    # -- records and Kafka offsets ---------------------------------------------------------

    def _commit_to_kafka(self, result: BatchResult) -> None:
        """Best effort, for external lag tools only: PostgreSQL holds the offsets that count."""
        if not self._config.commit_kafka_offsets or not result.moves:
            return
        offsets_ = [TopicPartition(m.topic, m.partition, m.next_offset) for m in result.moves]
        try:
            self._kafka().commit(offsets_)
        except KafkaException as exc:
            self._log.debug("kafka offset commit skipped", reason=str(exc))

    # -- recovery -------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection, reconnecting with backoff while PostgreSQL is unreachable."""
        while self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = connect(self._settings, f"oncepipe-consumer:{self._group}")
            except RetriableError as exc:
                self._pause(str(exc))
                if self._stop_asked:
                    raise
        return self._conn

    def _drop_sessions(self) -> None:
        """Start new PostgreSQL sessions after a transient failure.

        A session that met a read-only node (25006) stays read-only after a fail-back, and one
        the server timed out is gone: only a new session sees the database as it is now.
        """
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
        self._failures.close()
        if self._attempts is not None:
            self._attempts.close()

    def _pause(self, reason: str) -> None:
        delay = self._backoff.next_delay()
        self._log.warning("waiting before retry", reason=reason, delay_s=round(delay, 3))
        self._hooks.heartbeat()  # waiting by design is not a stalled loop
        sleep_unless(lambda: self._stop_asked, delay)  # stop (a signal handler) sets a flag only
        self._hooks.heartbeat()

    def _claim_positions(
        self, partitions: Sequence[Coordinates]
    ) -> dict[Coordinates, int | None] | None:
        """On assignment: own ``partitions`` and load their offsets.

        Their attempt rows are read again: another worker may have counted on them meanwhile.
        """
        if self._attempts is not None:
            self._attempts.forget(partitions)
        return self._load_positions(partitions, claiming=True)

    def _load_positions(
        self, partitions: Sequence[Coordinates], *, claiming: bool = False
    ) -> dict[Coordinates, int | None] | None:
        """Stored offsets of ``partitions``, retried with backoff; None if asked to stop.

        ``claiming`` (on assignment) also records this worker as their owner, committed.
        """
        while True:
            try:
                conn = self._connection()
                with conn.cursor() as cursor:
                    positions = offsets.load(cursor, self._group, partitions)
                    if claiming:
                        self._note_new_partitions(cursor, positions)
                        claim(cursor, self._group, self._owner, list(partitions))
                if claiming:
                    conn.commit()
                else:
                    conn.rollback()
                return positions
            except psycopg.ProgrammingError as exc:
                raise ConfigError(
                    f"reading the stored offsets failed with SQLSTATE {exc.sqlstate} "
                    f"({type(exc).__name__}); run oncepipe migrate"
                ) from exc
            except (RetriableError, psycopg.Error) as exc:
                if not is_transient(exc):
                    raise
                self._drop_sessions()
                if self._stop_asked:
                    return None
                self._pause(first_line(exc))

    def _rewind(self, *, wait: bool) -> None:
        """Reload the stored offsets of every owned partition and seek there."""
        if wait:
            self._pause("batch failed")
        owned = list(self._assignment.positions)
        positions = self._load_positions(owned)
        if positions is None:
            return  # stopping: nothing will be applied any more
        for where, position in positions.items():
            if where not in self._bounds:  # held paused at its stored offset, not fetching
                self._seek(where, position)
        self._assignment.own(positions)

    def _note_new_partitions(
        self, cursor: psycopg.Cursor[Any], positions: Mapping[Coordinates, int | None]
    ) -> None:
        """Remember partitions new to the group: none stored, but others of their topic are.

        They were added to a live topic (partition growth): every record in them is newer than
        the group, so they start at the log start whatever ``auto_offset_reset`` says (with
        ``latest``, the records the relay sent there before this rebalance would be skipped).
        """
        if self._config.auto_offset_reset == "earliest":
            return
        unknown = [where for where, position in positions.items() if position is None]
        if not unknown:
            return
        known = offsets.topics_with_offsets(cursor, self._group, {t for t, _ in unknown})
        new = {where for where in unknown if where[0] in known}
        self._new_to_group |= new
        for topic, partition in sorted(new):
            self._log.info(
                "partition new to the group, starting at its log start",
                topic=topic,
                partition=partition,
            )

    def _start_offset(self, position: int | None, where: Coordinates | None = None) -> int:
        if position is not None:
            return position
        if self._config.auto_offset_reset == "earliest" or where in self._new_to_group:
            return OFFSET_BEGINNING
        return OFFSET_END

    def _seek(self, where: Coordinates, position: int | None) -> None:
        self._kafka().seek(where[0], where[1], self._start_offset(position, where))

    def _kafka(self) -> KafkaConsumer:
        """The consumer client; it exists while ``run`` runs."""
        if self._consumer is None:
            raise RuntimeError("the consumer client exists only while the worker runs")
        return self._consumer

    def _close(self) -> None:
        """Leave the group at once (no wait for the session timeout), then disconnect."""
        if self._consumer is not None:
            bound = self._config.close_timeout_s
            try:
                if not self._consumer.close(timeout_s=bound):
                    self._log.warning(
                        "left the group without a clean close",
                        reason=f"the group coordinator did not answer within {bound:g}s "
                        "(ONCEPIPE_CONSUMER_CLOSE_TIMEOUT_S); its partitions move to other "
                        "workers after the session timeout; stored offsets are unaffected",
                    )
            except (KafkaException, RuntimeError) as exc:
                self._log.warning("consumer close failed", reason=str(exc))
            self._consumer = None
        self._assignment.clear()
        self._failures.close()
        if self._attempts is not None:
            self._attempts.close()
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._log.info("consumer stopped")


def _handler_or_schema_error(exc: psycopg.ProgrammingError) -> ConfigError:
    return ConfigError(
        f"a statement of the batch failed with SQLSTATE {exc.sqlstate} "
        f"({type(exc).__name__}): the handler's SQL or the database schema is wrong; "
        "fix the handler or run oncepipe migrate (the offsets did not move)"
    )


def _partitions(records: Sequence[Record]) -> list[Coordinates]:
    """The partitions of ``records``, in order of first appearance."""
    return list(dict.fromkeys((r.topic(), r.partition()) for r in records))


def _ranges(records: Sequence[Record]) -> list[list[Any]]:
    """[topic, partition, first offset, last offset] per partition of partition-ordered records."""
    ranges: list[list[Any]] = []
    for record in records:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        if ranges and ranges[-1][0] == topic and ranges[-1][1] == partition:
            ranges[-1][3] = offset
        else:
            ranges.append([topic, partition, offset, offset])
    return ranges
