"""The replay's send path: whole chunks to one idempotent, acks=all client, answers in arrays.

``EventProducer`` answers each record with a ``Delivery`` through a callback chain of its
own; a replay needs less: per chunk, each record's partition and offset, or its error. Here
each record's delivery report writes straight into its chunk's arrays (``Sent``): one small
callable per record (confluent-kafka has no per-message opaque), no object per answer.

Every record still gets exactly one final answer: its own delivery report, a refusal when it
is queued (too large, ...), or, when no report comes within the wait or the client had to be
replaced after a fatal error, an error saying so (a report arriving later is ignored).

Public names: ``ChunkSender``, ``Sent``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

from oncepipe.errors import BrokerError
from oncepipe.kafka import KafkaError, KafkaException, KafkaProducer, Message, broker_error
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from producers import ProducerSettings

__all__ = ["ChunkSender", "Sent"]

log = get_logger("dlq.sender")

Header = tuple[str, bytes | None]
OutRecord = tuple[str, bytes | None, bytes | None, list[Header]]
"""topic, key, value, headers."""


class Sent:
    """The answers of one chunk's records, by position: partition and offset, or an error."""

    __slots__ = ("closed", "errors", "left", "offsets", "partitions")

    def __init__(self, count: int) -> None:
        self.partitions: list[int | None] = [None] * count
        self.offsets: list[int | None] = [None] * count
        self.errors: dict[int, BrokerError] = {}
        self.left = count  # records without an answer yet
        self.closed = False  # answered in full (a late report is ignored)

    def report(self, i: int, error: KafkaError | None, message: Message) -> None:
        """The delivery report of record ``i`` (librdkafka's callback)."""
        if self.closed:
            return
        if error is None:
            self.partitions[i] = message.partition()
            self.offsets[i] = message.offset()
        else:
            self.errors[i] = broker_error(error, f"delivering #{i}")
        self.left -= 1

    def give_up(self, why: str) -> None:
        """Answer every record still unanswered with an error (it may have been written)."""
        if self.closed:
            return
        self.closed = True
        if self.left <= 0:
            return
        for i, offset in enumerate(self.offsets):
            if offset is None and i not in self.errors:
                self.errors[i] = BrokerError(
                    f"no delivery report for #{i}: {why}",
                    code=KafkaError._MSG_TIMED_OUT,
                    name="_MSG_TIMED_OUT",
                    retriable=True,
                    fatal=False,
                )
        self.left = 0


class ChunkSender:
    """One librdkafka producer (idempotent, acks=all) sending replay chunks."""

    def __init__(self, settings: Settings, producer_settings: ProducerSettings) -> None:
        self._settings = settings
        self._producer_settings = producer_settings
        self._fatal: BrokerError | None = None
        self._open: list[Sent] = []  # chunks on the current client with answers pending
        self._client = self._create()

    def _create(self) -> KafkaProducer:
        config = {**self._producer_settings.client_config(), "error_cb": self._on_client_error}
        return KafkaProducer.create(self._settings, config)

    def _on_client_error(self, error: KafkaError) -> None:
        wrapped = broker_error(error, "producer")
        if error.fatal():
            self._fatal = wrapped
            log.error("producer fatal error; the client will be recreated", error=str(wrapped))
        else:
            log.warning("producer client error", error=str(wrapped), code=wrapped.name)

    def partition_counts(self, timeout: float = 5.0) -> dict[str, int]:
        """Partitions of every topic the cluster knows now (topics in error are left out)."""
        return self._client.partition_counts(timeout)

    def send(self, records: Sequence[OutRecord]) -> Sent:
        """Queue ``records`` without waiting; their answers fill the returned ``Sent``."""
        if self._fatal is not None:
            self._recreate()
        sent = Sent(len(records))
        self._open = [chunk for chunk in self._open if chunk.left > 0]
        self._open.append(sent)
        # Typed loosely: a replay's header values are bytes, which the client's list takes.
        produce: Callable[..., None] = self._client.produce
        poll, report = self._client.poll, sent.report
        for i, (topic, key, value, headers) in enumerate(records):
            while True:
                try:
                    produce(topic, value, key, on_delivery=partial(report, i), headers=headers)
                    break
                except BufferError:
                    poll(0.1)  # the local queue is full: serve reports to make room
                except KafkaException as exc:
                    # Refused before sending (e.g. larger than message.max.bytes): final.
                    sent.errors[i] = broker_error(exc, f"producing #{i}")
                    sent.left -= 1
                    break
        return sent

    def wait(self, sent: Sent, timeout: float) -> None:
        """Serve reports until ``sent`` is answered in full, at most ``timeout`` seconds.

        Later chunks are not waited for; what is left unanswered then is given up on.
        """
        deadline = time.monotonic() + timeout
        poll = self._client.poll
        while sent.left > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            poll(min(1.0, left))
        sent.give_up("not within the delivery timeout")
        if self._fatal is None:
            # A fatal report may come before the client's error callback.
            for error in sent.errors.values():
                if error.fatal:
                    self._fatal = error
                    break

    def _recreate(self) -> None:
        log.warning("recreating producer after fatal error", error=str(self._fatal))
        self._discard_client("its producer was replaced after a fatal error")
        self._fatal = None
        self._client = self._create()

    def _discard_client(self, why: str) -> None:
        # Purged records are answered with a _PURGE_* error; whatever is left, here.
        self._client.purge()
        self._client.flush(1.0)
        for chunk in self._open:
            chunk.give_up(why)
        self._open = []

    def close(self, timeout: float = 30.0) -> int:
        """Flush what is queued, answer the rest with errors; return how many were unanswered."""
        unanswered = self._client.flush(timeout)
        if unanswered:
            self._discard_client(f"the producer was closed after waiting {timeout:g} s")
        return unanswered
