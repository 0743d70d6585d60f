"""The producing side: events into Kafka exactly once, through a transactional outbox.

- Upstream code: ``enqueue`` an event (or ``enqueue_record`` encoded bytes) in its own
  database transaction; ``event_headers`` are the headers every event carries;
  ``pending_count`` says how many rows wait; ``read_backlog`` (a ``Backlog``) also the oldest
  row and the partitions held.
- The relay (``oncepipe relay``): ``Relay`` publishes outbox rows in order per key, with
  ``RelaySettings``; several relays share the outbox's shards, ``read_owners`` (each a
  ``ShardOwner``) says which relay holds which.
- Publishing: ``EventProducer`` (idempotent, acks=all) sends each ``OutgoingRecord`` and
  reports its ``Delivery``; ``ProducerSettings`` tune it.
- Topics: ``create_event_topics`` makes each event topic and its dead-letter topic
  (``topic_plan``, ``TopicSpec``, ``dlq_topic_max_bytes``, ``TopicSettings``);
  ``check_topic_name`` refuses an illegal name. Topic names themselves are in ``schemas``.

Imports the plumbing (``oncepipe``) and the contract (``schemas``), never ``consumers``.
"""

from __future__ import annotations

from producers.backlog import Backlog, read_backlog
from producers.outbox import enqueue, enqueue_record, event_headers, pending_count
from producers.producer import Delivery, EventProducer, OutgoingRecord
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings, TopicSettings
from producers.shards import ShardOwner, read_owners
from producers.topics import (
    TopicSpec,
    check_topic_name,
    create_event_topics,
    dlq_topic_max_bytes,
    topic_plan,
)

__all__ = [
    "Backlog",
    "Delivery",
    "EventProducer",
    "OutgoingRecord",
    "ProducerSettings",
    "Relay",
    "RelaySettings",
    "ShardOwner",
    "TopicSettings",
    "TopicSpec",
    "check_topic_name",
    "create_event_topics",
    "dlq_topic_max_bytes",
    "enqueue",
    "enqueue_record",
    "event_headers",
    "pending_count",
    "read_backlog",
    "read_owners",
    "topic_plan",
]
