"""Faults of the poison policies (issue 23): a poisoned key with later events, a record that
kills its worker, a dependency that answers 503 for a while.

The records go straight into the direct topic, each a valid click event whose item marks it for
the chaos consumers' handler (``tests.fixtures.crash_handlers:witnessed_marked_clicks``):

- ``poison_key``: a ``blocker-`` event, then three later events of its key: the blocker is
  dead-lettered and parks the key (the group runs ``--on-poison park-key``), the later events
  wait until the end of the run discards the blocker (``release_parked``), then apply in order;
- ``killer_record``: a ``killer-`` event that ``os._exit``s whichever worker handles it, then an
  event of its key: crash-loop detection must make it one ``crash`` dead letter;
- ``flaky_dependency``: a ``flaky-`` event that asks ``RetryLater`` twice, then an event of its
  key: applied once, after two retry tiers, and the key waits for it.

Blockers and killers go to the poison manifest (each dead-lettered once, by its coordinates);
the events that must apply go to the marked manifest (like any submission); every marked record
and its produce timestamp go to the marks manifest the poison checks read.

Public names: ``PoisonFaults``, ``MARK_KINDS``, ``MARKED_HANDLER``, ``SIMULATOR_POISON_SHARE``,
``POISON_DEFECTS``.
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from oncepipe.kafka import Producer
from producers.outbox import event_headers
from schemas import ClickAction, ClickEvent, Codec

if TYPE_CHECKING:
    from tests.faults.chaos.faults import FaultRecord
    from tests.faults.chaos.pipeline import Pipeline

__all__ = [
    "MARKED_HANDLER",
    "MARK_KINDS",
    "POISON_DEFECTS",
    "SIMULATOR_POISON_SHARE",
    "PoisonFaults",
]

MARK_KINDS = ("blocker", "killer", "flaky")
MARKED_HANDLER = "tests.fixtures.crash_handlers:witnessed_marked_clicks"
# With park-key, each simulator poison record parks its user (one of the run's few hundred keys)
# until the end-of-run release: at the full rate most keys would wait most of the run, so the
# simulators send a tenth of their usual poison (still a few dozen parked users per run).
SIMULATOR_POISON_SHARE = 0.1
# Defect rounds of the poison checks (tests/faults/test_chaos_poison.py): a consumer setting
# that breaks one promise, the product code untouched.
POISON_DEFECTS: dict[str, dict[str, str]] = {
    "poison_skips": {"ONCEPIPE_CONSUMER_ON_POISON": "skip"},  # later events do not wait
    "no_crash_detection": {"ONCEPIPE_CONSUMER_CRASH_ATTEMPTS": "0"},  # a killer loops forever
    "retry_at_once": {"ONCEPIPE_CONSUMER_RETRY_TIERS": "0,0,0"},  # no delay between attempts
}
LATER_EVENTS = {"blocker": 3, "killer": 1, "flaky": 1}

Placed = tuple[str, int, int, int]  # topic, partition, offset, timestamp (ms)


def _produce(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes, Any]]
) -> list[Placed]:
    """Produce in order (idempotent: one key's records keep their order); coordinates and the
    broker-side timestamps, in the order given."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    placed: dict[int, Placed] = {}
    errors: list[str] = []

    def delivered(index: int, err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            placed[index] = (msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1])

    for index, (key, value, headers) in enumerate(records):
        producer.produce(
            topic, value=value, key=key, headers=headers,
            on_delivery=functools.partial(delivered, index),
        )  # fmt: skip
    if producer.flush(60) or errors:
        raise RuntimeError(f"marked records not all delivered: {errors[:1]}")
    return [placed[i] for i in range(len(records))]


class PoisonFaults:
    """Poison-policy faults (a mixin of ``Injector``)."""

    pipeline: Pipeline
    codec: Codec
    marked: int = 0

    def _poison_key(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """A blocker and three later events of its key."""
        self._marked(record, rng, "blocker")

    def _killer_record(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """A record that kills the worker handling it, and a later event of its key."""
        self._marked(record, rng, "killer")

    def _flaky_dependency(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """An event whose dependency answers 503 twice, and a later event of its key."""
        self._marked(record, rng, "flaky")

    def _marked(self, record: FaultRecord, rng: random.Random, mark: str) -> None:
        self.marked += 1
        topic = self.pipeline.topics["direct"]
        key = f"{mark}-key-{self.marked}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
        events = [self._event(rng, key, f"{mark}-{self.marked}")]
        events += [
            self._event(rng, key, f"item-{rng.randrange(self.pipeline.config.items)}")
            for _ in range(LATER_EVENTS[mark])
        ]
        encoded = [self.codec.encode(e) for e in events]
        placed = _produce(
            self.pipeline.services.kafka.bootstrap_servers,
            topic,
            [(e.key, e.value, list(event_headers(e))) for e in encoded],
        )
        lines = [self._line(e, n) for n, e in enumerate(events)]
        marked_lines = lines if mark == "flaky" else lines[1:]
        with self.pipeline.marked_manifest.open("a") as manifest:
            manifest.writelines(json.dumps(line) + "\n" for line in marked_lines)
        if mark != "flaky":  # dead-lettered once by its coordinates, never applied
            where = placed[0]
            with self.pipeline.poison_manifest.open("a") as manifest:
                manifest.write(json.dumps({"topic": where[0], "partition": where[1],
                                           "offset": where[2], "mark": mark}) + "\n")  # fmt: skip
        mark_line = {
            "mark": mark, "key": key, "event_id": str(events[0].event_id),
            "topic": placed[0][0], "partition": placed[0][1], "offset": placed[0][2],
            "timestamp_ms": placed[0][3], "later": [str(e.event_id) for e in events[1:]],
        }  # fmt: skip
        with self.pipeline.marks_manifest.open("a") as manifest:
            manifest.write(json.dumps(mark_line) + "\n")
        record.target = f"{topic}[{placed[0][1]}]@{placed[0][2]}"
        record.detail = f"{mark} of key {key}, {len(events) - 1} later"

    def _line(self, event: ClickEvent, n: int) -> dict[str, Any]:
        return {
            "seq": self.marked * 10 + n, "kind": "event", "event_id": str(event.event_id),
            "key": event.user_id, "item_id": event.item_id, "action": event.action.value,
            "poison_kind": None,
        }  # fmt: skip

    def _event(self, rng: random.Random, key: str, item: str) -> ClickEvent:
        return ClickEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=key,
            item_id=item,
            action=rng.choice(list(ClickAction)),
            occurred_at=datetime.now(UTC),
            session_id="poison-session",
            surface="chaos",
        )
