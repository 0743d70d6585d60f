"""The idempotent producer: sends records, reports delivery per record, never drops silently.

``send_all`` returns one ``Delivery`` per record once librdkafka has a final answer for each
(acknowledged by all in-sync replicas, or refused). After a fatal error (for instance a fenced
idempotent producer) the underlying client is replaced before the next send, so a broken
producer never carries on.

Public names: ``OutgoingRecord``, ``Delivery``, ``EventProducer``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oncepipe.errors import BrokerError
from oncepipe.kafka import KafkaError, KafkaException, Message, broker_error, create_producer
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from producers.settings import ProducerSettings

__all__ = ["Delivery", "EventProducer", "OutgoingRecord"]

log = get_logger("producer")


@dataclass(frozen=True)
class OutgoingRecord:
    """A record to publish; ``ref`` is the caller's handle (the outbox row id)."""

    ref: int
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, str | bytes]] = ()


@dataclass(frozen=True)
class Delivery:
    """The broker's final answer for one record."""

    ref: int
    error: BrokerError | None = None
    partition: int | None = None
    offset: int | None = None

    @property
    def ok(self) -> bool:
        """True when the record was acknowledged."""
        return self.error is None


class EventProducer:
    """Publish records with an idempotent, acks=all producer and collect every delivery."""

    def __init__(self, settings: Settings, producer_settings: ProducerSettings) -> None:
        self._settings = settings
        self._producer_settings = producer_settings
        self._fatal: BrokerError | None = None
        self._client = self._create()

    def _create(self) -> Any:
        config: dict[str, Any] = {
            **self._producer_settings.client_config(),
            "error_cb": self._on_client_error,
        }
        return create_producer(self._settings, config)

    def _on_client_error(self, error: KafkaError) -> None:
        wrapped = broker_error(error, "producer")
        if error.fatal():
            self._fatal = wrapped
            log.error("producer fatal error; the client will be recreated", error=str(wrapped))
        else:
            # Brokers down or unreachable: librdkafka keeps retrying until delivery.timeout.ms.
            log.warning("producer client error", error=str(wrapped), code=wrapped.name)

    def send_all(self, records: Sequence[OutgoingRecord]) -> list[Delivery]:
        """Publish ``records`` and wait until each has a final delivery report."""
        if self._fatal is not None:
            self._recreate()
        answers: dict[int, Delivery] = {}

        def on_delivery(ref: int) -> Any:
            def report(error: KafkaError | None, message: Message) -> None:
                if error is not None:
                    answers[ref] = Delivery(ref, error=broker_error(error, f"delivering #{ref}"))
                    if error.fatal():
                        self._fatal = answers[ref].error
                else:
                    answers[ref] = Delivery(
                        ref, partition=message.partition(), offset=message.offset()
                    )

            return report

        for record in records:
            self._produce(record, on_delivery(record.ref), answers)
        # librdkafka answers every record within delivery.timeout.ms; wait a little longer.
        deadline = time.monotonic() + self._producer_settings.delivery_timeout_ms / 1000 + 30
        while len(answers) < len(records) and time.monotonic() < deadline:
            self._client.flush(1.0)
        return [answers.get(r.ref) or self._unanswered(r.ref) for r in records]

    def _produce(self, record: OutgoingRecord, callback: Any, answers: dict[int, Delivery]) -> None:
        while True:
            try:
                self._client.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=callback,
                )
                return
            except BufferError:
                # The local queue is full: serve delivery reports to make room, then retry.
                self._client.poll(0.1)
            except KafkaException as exc:
                # Refused before sending (e.g. larger than message.max.bytes): final answer.
                answers[record.ref] = Delivery(
                    record.ref, error=broker_error(exc, f"producing #{record.ref}")
                )
                return

    @staticmethod
    def _unanswered(ref: int) -> Delivery:
        error = BrokerError(
            f"no delivery report for #{ref} within the delivery timeout",
            code=KafkaError._MSG_TIMED_OUT,
            name="_MSG_TIMED_OUT",
            retriable=True,
            fatal=False,
        )
        return Delivery(ref, error=error)

    def _recreate(self) -> None:
        log.warning("recreating producer after fatal error", error=str(self._fatal))
        self._client.purge()
        self._client.flush(0)
        self._fatal = None
        self._client = self._create()

    def close(self, timeout: float = 30.0) -> int:
        """Flush what is queued; return how many records are still undelivered."""
        return int(self._client.flush(timeout))
