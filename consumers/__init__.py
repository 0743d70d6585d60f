"""The consuming side: Kafka events into PostgreSQL with exactly-once effects.

- Queue mode (``oncepipe consume --mode queue``, a share group): ``QueueRuntime`` with
  ``QueueSettings`` (``load_queue_settings``, ``consume_mode``), its view in ``QueueCounts``.
- Running a worker (``oncepipe consume``): ``ConsumerRuntime`` with ``ConsumerSettings``
  (``load_consumer_settings``); a batch is applied by ``apply_batch`` in one transaction
  (inbox dedupe, handler writes, offsets, dead letters), after ``decode_records``.
- Writing a handler: ``EventHandlers`` holds one function per event type (``.on(Model)``,
  each a ``TypedHandler`` taking ``Sequence[InboundEvent[Model]]`` and a ``HandlerContext``);
  an event of a type it has no function for is dead-lettered (``UnhandledEventTypeError``).
  A plain ``Handler`` takes any batch. Both are found by name through ``register``/``resolve``
  (``module:attribute``); ``outbox_sink`` (an ``OutboxSink``) lets ``tx.emit`` write derived
  events of any known type in the same transaction.
- Failures: where a record failed (``Stage``, ``STAGES``), why (``Failure``), and the headers
  of the dead letter written for it (``dead_letter_headers``).
- Stored state for tools: ``offsets`` (offsets per group, in PostgreSQL), ``group`` (the
  group and its partitions as Kafka sees them), ``out_of_range`` (a stored offset against
  the log's bounds), ``list_partitions``/``maintain`` (the inbox's daily partitions).
- Progress for observers: ``read_progress`` (each group's stored offsets against the high
  watermarks, with owners: ``PartitionProgress``).
- Places: ``Coordinates`` (topic, partition), ``Key`` (topic, partition, offset).

Handlers shipped with oncepipe are in ``consumers.handlers``; the dead-letter tool (read,
group, replay) is ``consumers.dlq``, which this package does not import.
"""

from __future__ import annotations

from consumers import group, offsets
from consumers.batch import BatchResult, apply_batch
from consumers.bounds import out_of_range
from consumers.context import HandlerContext, OutboxSink, outbox_sink
from consumers.deadletter_headers import STAGES, Failure, Stage, dead_letter_headers
from consumers.decoding import decode_records
from consumers.dispatch import EventHandlers, TypedHandler, UnhandledEventTypeError
from consumers.events import Coordinates, InboundEvent, Key
from consumers.inbox_partitions import covered_until, list_partitions, maintain
from consumers.progress import PartitionProgress, read_progress
from consumers.queue_counts import QueueCounts, QueueMember, read_members
from consumers.queue_runtime import QueueRuntime
from consumers.queue_settings import QueueSettings, consume_mode, load_queue_settings
from consumers.registry import Handler, register, resolve
from consumers.retries import RetryLater
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings, load_consumer_settings

__all__ = [
    "STAGES",
    "BatchResult",
    "ConsumerRuntime",
    "ConsumerSettings",
    "Coordinates",
    "EventHandlers",
    "Failure",
    "Handler",
    "HandlerContext",
    "InboundEvent",
    "Key",
    "OutboxSink",
    "PartitionProgress",
    "QueueCounts",
    "QueueMember",
    "QueueRuntime",
    "QueueSettings",
    "RetryLater",
    "Stage",
    "TypedHandler",
    "UnhandledEventTypeError",
    "apply_batch",
    "consume_mode",
    "covered_until",
    "dead_letter_headers",
    "decode_records",
    "group",
    "list_partitions",
    "load_consumer_settings",
    "load_queue_settings",
    "maintain",
    "offsets",
    "out_of_range",
    "outbox_sink",
    "read_members",
    "read_progress",
    "register",
    "resolve",
]
