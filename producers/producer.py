"""The idempotent producer: sends records, reports delivery per record, never drops silently.

Two ways to send, one guarantee: every record gets exactly one final ``Delivery``
(acknowledged by all in-sync replicas, or refused, or given up on with an error that says so).

- ``send_all`` blocks until each record of the batch has its answer and returns them in order:
  the relay needs that, because it marks outbox rows only after their acknowledgements.
- ``send`` queues records and returns at once; answers reach the caller's ``on_delivery`` from
  ``send`` itself (refused before sending, or a full queue being served), ``poll``, ``flush``
  or ``close``. Callers that do not need to block per batch (upstream services producing
  directly) keep librdkafka's queue full this way.

After a fatal error (for instance a fenced idempotent producer) the underlying client is
replaced before the next send, so a broken producer never carries on; records the old client
still held get an error answer then.

Public names: ``OutgoingRecord``, ``Delivery``, ``DeliveryCallback``, ``EventProducer``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from oncepipe.errors import BrokerError
from oncepipe.kafka import KafkaError, KafkaException, KafkaProducer, Message, broker_error
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from producers.settings import ProducerSettings

__all__ = ["Delivery", "DeliveryCallback", "EventProducer", "OutgoingRecord"]

log = get_logger("producer")

# Serve delivery reports this often while queueing, so they never pile up until a BufferError.
_POLL_EVERY = 1000


# Both records below are made once per event on the producing path. A frozen dataclass's own
# __init__ sets each field through object.__setattr__ (about half a microsecond for six); these
# write the instance dict at once instead: same fields, defaults, equality, hash and repr.


@dataclass(frozen=True, init=False)
class OutgoingRecord:
    """A record to publish; ``ref`` is the caller's handle (the outbox row id)."""

    ref: int
    topic: str
    key: bytes | None
    value: bytes | None
    """None publishes a tombstone."""
    headers: Sequence[tuple[str, str | bytes | None]] = ()
    partition: int = -1
    """-1 lets librdkafka's partitioner choose; the relay chooses itself (producers/partitioner)."""

    def __init__(  # noqa: PLR0917 - the dataclass's own signature, positional as before
        self,
        ref: int,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, str | bytes | None]] = (),
        partition: int = -1,
    ) -> None:
        self.__dict__.update(
            ref=ref, topic=topic, key=key, value=value, headers=headers, partition=partition
        )


@dataclass(frozen=True, init=False)
class Delivery:
    """The broker's final answer for one record."""

    ref: int
    error: BrokerError | None = None
    partition: int | None = None
    offset: int | None = None

    def __init__(
        self,
        ref: int,
        error: BrokerError | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.__dict__.update(ref=ref, error=error, partition=partition, offset=offset)

    @property
    def ok(self) -> bool:
        """True when the record was acknowledged."""
        return self.error is None


DeliveryCallback = Callable[[Delivery], None]


def _gave_up(ref: int, why: str) -> Delivery:
    # Not answered by librdkafka: the record may or may not have been written.
    error = BrokerError(
        f"no delivery report for #{ref}: {why}",
        code=KafkaError._MSG_TIMED_OUT,
        name="_MSG_TIMED_OUT",
        retriable=True,
        fatal=False,
    )
    return Delivery(ref, error=error)


class EventProducer:
    """Publish records with an idempotent, acks=all producer and report every delivery."""

    def __init__(self, settings: Settings, producer_settings: ProducerSettings) -> None:
        self._settings = settings
        self._producer_settings = producer_settings
        self._fatal: BrokerError | None = None
        # Every record librdkafka holds: sequence number -> (caller's ref, where its answer goes).
        # One entry per record is what lets a replaced client or ``close`` answer the rest.
        self._pending: dict[int, tuple[int, DeliveryCallback]] = {}
        self._seq = itertools.count()
        self._client = self._create()

    def _create(self) -> KafkaProducer:
        config: dict[str, Any] = {
            **self._producer_settings.client_config(),
            "error_cb": self._on_client_error,
        }
        return KafkaProducer.create(self._settings, config)

    def _on_client_error(self, error: KafkaError) -> None:
        wrapped = broker_error(error, "producer")
        if error.fatal():
            self._fatal = wrapped
            log.error("producer fatal error; the client will be recreated", error=str(wrapped))
        else:
            # Brokers down or unreachable: librdkafka keeps retrying until delivery.timeout.ms.
            log.warning("producer client error", error=str(wrapped), code=wrapped.name)

    def send(self, records: Iterable[OutgoingRecord], on_delivery: DeliveryCallback) -> None:
        """Queue ``records`` without waiting; ``on_delivery`` gets one final answer per record.

        Answers arrive during this call (refused at once, or reports served while queueing)
        and from later ``poll``, ``flush`` or ``close`` calls, in offset order per partition.
        An exception raised by ``on_delivery`` propagates from the call that served it.
        """
        if self._fatal is not None:
            self._recreate()
        self._queue(records, on_delivery)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports for up to ``timeout`` seconds; return how many are unanswered."""
        self._client.poll(timeout)
        return len(self._pending)

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for every answer; return how many are still unanswered.

        Unanswered records stay queued and are answered by a later ``poll``, ``flush`` or
        ``close`` (librdkafka gives each a final report within ``delivery.timeout.ms``).
        """
        self._client.flush(timeout)
        return len(self._pending)

    def send_all(
        self, records: Sequence[OutgoingRecord], timeout: float | None = None
    ) -> list[Delivery]:
        """Publish ``records`` and wait until each has a final delivery report.

        With ``timeout``, wait at most that many seconds: then the records still queued are
        purged (never written), those in flight get ``timeout`` seconds more before they are
        purged too (those may have been written); each is answered with an error, so one
        unavailable partition cannot hold the caller for ``delivery.timeout.ms``.
        """
        if self._fatal is not None:
            self._recreate()
        answers: dict[int, Delivery] = {}

        def collect(delivery: Delivery) -> None:
            answers[delivery.ref] = delivery

        self._queue(records, collect)
        # librdkafka answers every record within delivery.timeout.ms; wait a little longer.
        wait = self._producer_settings.delivery_timeout_ms / 1000 + 30
        deadline = time.monotonic() + (wait if timeout is None else min(wait, timeout))
        while len(answers) < len(records):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._client.flush(min(1.0, left))
        if len(answers) < len(records) and timeout is not None:
            self._purge(lambda: len(answers) >= len(records), grace=timeout)
        if len(answers) < len(records):
            # Answered below as timed out: a report arriving later must not count twice.
            late = [seq for seq, (_, sink) in self._pending.items() if sink is collect]
            for seq in late:
                del self._pending[seq]
        return [
            answers.get(r.ref) or _gave_up(r.ref, "not within the delivery timeout")
            for r in records
        ]

    def _queue(self, records: Iterable[OutgoingRecord], sink: DeliveryCallback) -> None:
        # The hot loop of both sends: attribute look-ups hoisted, one small callable per record
        # (confluent-kafka has no per-message opaque, so the callback is how a report finds
        # its record).
        produce, poll = self._client.produce, self._client.poll
        pending, seqs, on_report = self._pending, self._seq, self._on_report
        for n, record in enumerate(records, 1):
            # confluent-kafka takes a list (or None) as it is: copy only other sequences.
            headers: Any = record.headers
            if headers.__class__ is not list:
                headers = list(headers) or None
            seq = next(seqs)
            pending[seq] = (record.ref, sink)
            while True:
                try:
                    produce(
                        record.topic,
                        record.value,
                        record.key,
                        partition=record.partition,
                        on_delivery=partial(on_report, seq),
                        headers=headers,
                    )
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports to make room, then retry.
                    poll(0.1)
                except KafkaException as exc:
                    # Refused before sending (e.g. larger than message.max.bytes): final answer.
                    del pending[seq]
                    sink(Delivery(record.ref, error=broker_error(exc, f"producing #{record.ref}")))
                    break
            if n % _POLL_EVERY == 0:
                poll(0)

    def _on_report(self, seq: int, error: KafkaError | None, message: Message) -> None:
        entry = self._pending.pop(seq, None)
        if entry is None:
            return  # already answered (send_all gave up on it, or its client was replaced)
        ref, sink = entry
        if error is None:
            sink(Delivery(ref, None, message.partition(), message.offset()))
            return
        wrapped = broker_error(error, f"delivering #{ref}")
        if error.fatal():
            self._fatal = wrapped
        sink(Delivery(ref, error=wrapped))

    def partition_counts(self, timeout: float = 5.0) -> dict[str, int]:
        """Partitions of every topic the cluster knows now (topics in error are left out)."""
        return self._client.partition_counts(timeout)

    def _purge(self, answered: Callable[[], bool], grace: float) -> None:
        # Queued records were never sent: purging them writes nothing, so nothing is
        # duplicated when they are sent again. Records in flight get up to ``grace`` seconds to
        # be answered (a retry puts one back in the queue, purged in turn); only then are they
        # purged too, and those may have been written. Every purged record is answered with
        # _PURGE_QUEUE / _PURGE_INFLIGHT; the idempotent producer carries on.
        deadline = time.monotonic() + grace
        while True:
            self._client.purge(in_queue=True, in_flight=False)
            self._client.poll(0)
            if answered() or time.monotonic() >= deadline:
                break
            self._client.flush(min(0.2, max(0.0, deadline - time.monotonic())))
        if not answered():
            self._client.purge(in_queue=True, in_flight=True)
        self._client.flush(1.0)

    def _recreate(self) -> None:
        log.warning("recreating producer after fatal error", error=str(self._fatal))
        self._discard_client("its producer was replaced after a fatal error")
        self._fatal = None
        self._client = self._create()

    def _discard_client(self, why: str) -> None:
        # Purged records are reported with a _PURGE_* error; whatever is left gets one here.
        self._client.purge()
        self._client.flush(0)
        leftover, self._pending = self._pending, {}
        for ref, sink in leftover.values():
            sink(_gave_up(ref, why))

    def close(self, timeout: float = 30.0) -> int:
        """Flush what is queued, answer the rest with errors; return how many were unanswered."""
        unanswered = self.flush(timeout)
        if unanswered:
            self._discard_client(f"the producer was closed after waiting {timeout:g} s")
        return unanswered
