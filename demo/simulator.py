"""The upstream simulator: click signals at a rate, with duplicates and known poison.

Two upstream styles:
- ``outbox``: each request writes its event through ``enqueue`` in its own transaction; a
  duplicate is the same request retried with the same idempotency key (event_id), so the
  outbox absorbs it;
- ``direct``: an upstream publishing straight to Kafka that re-sends after a timeout; a
  duplicate is a new Kafka record with the same event_id, left for the consumer's inbox.

Within one key (user) events are submitted one after another, so the expected per-key order is
the submission order. A manifest (JSON lines) records every submission for checks.

``new_item_rate`` sends that share of the clicks to items launched during the run
(``new-item-0`` to ``new-item-2``): valid events, for downstream checks that lag behind.

Public names: ``SimulationPlan``, ``SimulationReport``, ``Simulator``, ``POISON_KINDS``,
``NEW_ITEMS``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Literal

from oncepipe.db import connect
from oncepipe.settings import Settings
from producers import EventProducer, OutgoingRecord, ProducerSettings, enqueue_record, event_headers
from schemas import ClickAction, ClickEvent, Codec, Encoded, SchemaStore

__all__ = ["NEW_ITEMS", "POISON_KINDS", "SimulationPlan", "SimulationReport", "Simulator"]

POISON_KINDS = ("bad_magic", "truncated", "invalid_field")
# Items launched during the run (``new-item-<n>``): valid clicks that a downstream catalog synced
# before the launch does not list yet.
NEW_ITEMS = 3
SURFACES = ("home", "search", "similar_items", "email")
# Direct mode sends this many records per produce-and-wait round (order within a partition
# is kept by the idempotent producer).
DIRECT_BATCH = 500


@dataclass(frozen=True)
class SimulationPlan:
    """What to submit."""

    mode: Literal["outbox", "direct"] = "outbox"
    topic: str = "events.click"
    count: int = 1000
    keys: int = 100
    items: int = 50
    duplicate_rate: float = 0.0
    poison_rate: float = 0.0
    new_item_rate: float = 0.0
    rate: float = 0.0  # events per second; 0 = as fast as possible
    seed: int = 0


@dataclass
class SimulationReport:
    """What was submitted."""

    distinct_events: int = 0
    duplicates: int = 0
    poison: int = 0
    kafka_records: int = 0
    outbox_rows: int = 0
    seconds: float = 0.0
    poison_kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Submission:
    """One submission, as the manifest records it."""

    seq: int
    kind: Literal["event", "duplicate", "poison"]
    event_id: str
    key: str
    item_id: str
    action: str
    poison_kind: str | None = None


Submit = Callable[[Submission, "Encoded | bytes", SimulationReport], None]


class Simulator:
    """Generate and submit click signals according to a plan."""

    def __init__(
        self,
        settings: Settings,
        codec: Codec,
        plan: SimulationPlan,
        producer_settings: ProducerSettings | None = None,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self._plan = plan
        self._producer_settings = producer_settings or ProducerSettings()
        # Reproducible test data, not secrets: the seed must replay the same submissions.
        self._random = random.Random(plan.seed)  # noqa: S311

    def submissions(self) -> Iterator[tuple[Submission, Encoded | bytes]]:
        """The plan as (submission, payload) pairs: an Encoded event or raw poison bytes."""
        plan, rng = self._plan, self._random
        start = datetime(2026, 1, 1, tzinfo=UTC)
        seq = 0
        for n in range(plan.count):
            user = f"user-{rng.randrange(plan.keys)}"
            event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            item = f"item-{rng.randrange(plan.items)}"
            # Drawn only when asked for, so that a seed without new items submits what it did.
            if plan.new_item_rate and rng.random() < plan.new_item_rate:
                item = f"new-item-{rng.randrange(NEW_ITEMS)}"
            event = ClickEvent(
                event_id=event_id,
                user_id=user,
                item_id=item,
                action=rng.choice(list(ClickAction)),
                occurred_at=start + timedelta(milliseconds=n),
                session_id=f"session-{rng.randrange(plan.keys * 3)}",
                surface=rng.choice(SURFACES),
            )
            if rng.random() < plan.poison_rate:
                kind = rng.choice(POISON_KINDS)
                yield self._submission(seq, "poison", event, kind), self._poison(event, kind)
                seq += 1
                continue
            encoded = self._codec.encode(event)
            yield self._submission(seq, "event", event), encoded
            seq += 1
            if rng.random() < plan.duplicate_rate:
                yield self._submission(seq, "duplicate", event), encoded
                seq += 1

    @staticmethod
    def _submission(
        seq: int,
        kind: Literal["event", "duplicate", "poison"],
        event: ClickEvent,
        poison: str | None = None,
    ) -> Submission:
        return Submission(
            seq, kind, str(event.event_id), event.user_id, event.item_id, event.action.value, poison
        )

    def _poison(self, event: ClickEvent, kind: str) -> bytes:
        good = self._codec.encode(event).value
        if kind == "bad_magic":
            return b"\x00\x01" + good[2:]
        if kind == "truncated":
            return good[: 10 + (len(good) - 10) // 3]
        # Valid Avro, invalid for the model: an empty user_id (identifiers need a character).
        invalid = ClickEvent.model_construct(**{**event.model_dump(), "user_id": ""})
        return self._codec.encode(invalid).value

    def run(self, manifest: IO[str] | None = None) -> SimulationReport:
        """Submit everything, pacing to ``rate``; write one manifest line per submission."""
        report = SimulationReport()
        # An upstream registers its writer schemas before its first event (DESIGN.md §3).
        SchemaStore(self._settings.database_url.get_secret_value()).register(self._codec)
        started = time.monotonic()
        sink = self._outbox_sink() if self._plan.mode == "outbox" else self._direct_sink()
        with sink as submit:
            for index, (submission, payload) in enumerate(self.submissions()):
                self._pace(index, started)
                submit(submission, payload, report)
                if submission.kind == "poison":
                    report.poison += 1
                    kind = submission.poison_kind or "unknown"
                    report.poison_kinds[kind] = report.poison_kinds.get(kind, 0) + 1
                elif submission.kind == "duplicate":
                    report.duplicates += 1
                else:
                    report.distinct_events += 1
                if manifest is not None:
                    manifest.write(json.dumps(asdict(submission)) + "\n")
        report.seconds = round(time.monotonic() - started, 3)
        return report

    def _pace(self, index: int, started: float) -> None:
        if self._plan.rate > 0:
            delay = started + index / self._plan.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _record_fields(
        self, submission: Submission, payload: Encoded | bytes
    ) -> tuple[bytes, bytes, list[tuple[str, str]]]:
        if isinstance(payload, Encoded):
            return payload.key, payload.value, event_headers(payload)
        headers = [("event_id", submission.event_id), ("event_type", "ClickEvent")]
        return submission.key.encode(), payload, headers

    @contextmanager
    def _outbox_sink(self) -> Iterator[Submit]:
        topic = self._plan.topic
        with connect(self._settings, "oncepipe-simulator") as conn:

            def submit(
                submission: Submission, payload: Encoded | bytes, report: SimulationReport
            ) -> None:
                key, value, headers = self._record_fields(submission, payload)
                # One upstream request, one transaction: a retry re-runs it with the same key.
                with conn.transaction():
                    if enqueue_record(
                        conn, topic, submission.event_id, key=key, value=value, headers=headers
                    ):
                        report.outbox_rows += 1

            yield submit

    @contextmanager
    def _direct_sink(self) -> Iterator[Submit]:
        producer = EventProducer(self._settings, self._producer_settings)
        pending: list[OutgoingRecord] = []

        def send_pending() -> None:
            # Every record must be acknowledged, as an upstream that retries until acked would.
            for delivery in producer.send_all(pending):
                if delivery.error is not None:
                    raise delivery.error
            pending.clear()

        def submit(
            submission: Submission, payload: Encoded | bytes, report: SimulationReport
        ) -> None:
            key, value, headers = self._record_fields(submission, payload)
            pending.append(OutgoingRecord(submission.seq, self._plan.topic, key, value, headers))
            report.kafka_records += 1
            if len(pending) >= DIRECT_BATCH:
                send_pending()

        try:
            yield submit
            send_pending()
        finally:
            producer.close()
