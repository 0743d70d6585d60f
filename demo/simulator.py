"""The upstream simulator: click signals at a rate, with duplicates and known poison.

Three upstream styles:
- ``outbox``: each request writes its event through ``enqueue`` in its own transaction; a
  duplicate is the same request retried with the same idempotency key (event_id), so the
  outbox absorbs it;
- ``direct``: an upstream publishing straight to Kafka that re-sends after a timeout; a
  duplicate is a new Kafka record with the same event_id, left for the consumer's inbox;
- ``http``: a service posting to ``oncepipe ingest`` (``demo.http_upstream``), optionally
  through a proxy losing ``drop_rate`` of the responses after the server answered; it retries
  with the same Idempotency-Key (``naive``: without a key, to the server's naive endpoint). A
  duplicate is the same request sent again. Poison is posted as a body the server refuses. The
  manifest's ``event_id`` is then the request's Idempotency-Key (the server derives the ids).

Within one key (user) events are submitted one after another, so the expected per-key order is
the submission order. A manifest (JSON lines) records every submission for checks.

``new_item_rate`` sends that share of the clicks to items launched during the run
(``new-item-0`` to ``new-item-2``): valid events, for downstream checks that lag behind.

Public names: ``SimulationPlan``, ``SimulationReport``, ``Simulator``, ``POISON_KINDS``,
``NEW_ITEMS``.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Literal
from urllib.parse import urlsplit

from demo.http_upstream import HttpUpstream
from demo.lossy_proxy import LossyProxy
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

    mode: Literal["outbox", "direct", "http"] = "outbox"
    topic: str = "events.click"
    count: int = 1000
    keys: int = 100
    items: int = 50
    duplicate_rate: float = 0.0
    poison_rate: float = 0.0
    new_item_rate: float = 0.0
    rate: float = 0.0  # events per second; 0 = as fast as possible
    seed: int = 0
    url: str = ""  # http mode: the ingest server
    api_key: str = field(default="", repr=False)  # http mode: read from a file, never argv
    drop_rate: float = 0.0  # http mode: share of responses the proxy loses
    naive: bool = False  # http mode: no Idempotency-Key, the server's naive endpoint
    concurrency: int = 8  # http mode: clients posting at once (one key's events stay in order)


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
    http_requests: int = 0
    """http mode: requests sent, retries included."""
    http_lost_answers: int = 0
    """http mode: answers the proxy lost after the server had answered."""
    http_replays: int = 0
    """http mode: stored responses the server replayed to a retry."""
    http_refused: int = 0
    """http mode: requests refused for good (4xx: the poison)."""


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


class _HttpTally:
    """What the http mode's lanes counted (their threads add under a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.replays = 0
        self.refused = 0
        self.lost = 0
        self.error: Exception | None = None

    def add(self, attempts: int, replayed: bool, *, refused: bool) -> None:
        with self._lock:
            self.requests += attempts
            self.replays += int(replayed)
            self.refused += int(refused)


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
        self._http_tally: _HttpTally | None = None

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
        sinks = {"outbox": self._outbox_sink, "direct": self._direct_sink, "http": self._http_sink}
        sink = sinks[self._plan.mode]()
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
        tally = self._http_tally
        if tally is not None:
            report.http_requests, report.http_replays = tally.requests, tally.replays
            report.http_refused, report.http_lost_answers = tally.refused, tally.lost
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

    @contextmanager
    def _http_sink(self) -> Iterator[Submit]:
        plan = self._plan
        target = urlsplit(plan.url)
        proxy = None
        url = plan.url
        if plan.drop_rate > 0:
            proxy = LossyProxy(target.hostname or "127.0.0.1", target.port or 80, plan.drop_rate,
                               seed=plan.seed)  # fmt: skip
            url = f"http://127.0.0.1:{proxy.port}"
        upstream = HttpUpstream(url, plan.api_key, naive=plan.naive)
        lanes: list[queue.Queue[tuple[Submission, Encoded | bytes] | None]] = [
            queue.Queue(1000) for _ in range(plan.concurrency)
        ]
        tally = _HttpTally()
        threads = [
            threading.Thread(target=self._http_lane, args=(upstream, lane, tally), daemon=True)
            for lane in lanes
        ]
        for thread in threads:
            thread.start()

        def submit(
            submission: Submission, payload: Encoded | bytes, _report: SimulationReport
        ) -> None:
            if tally.error is not None:
                raise tally.error
            # One key, one lane: a key's requests are posted one after another, in order.
            lanes[zlib.crc32(submission.key.encode()) % len(lanes)].put((submission, payload))

        try:
            yield submit
        finally:
            for lane in lanes:
                lane.put(None)
            for thread in threads:
                thread.join()
            if proxy is not None:
                tally.lost = proxy.dropped
                proxy.close()
        if tally.error is not None:
            raise tally.error
        self._http_tally = tally

    def _http_lane(
        self,
        upstream: HttpUpstream,
        lane: queue.Queue[tuple[Submission, Encoded | bytes] | None],
        tally: _HttpTally,
    ) -> None:
        while (item := lane.get()) is not None:
            if tally.error is not None:
                continue  # drain: the run has failed
            submission, payload = item
            try:
                if isinstance(payload, Encoded):
                    event = self._codec.to_model(self._codec.decode(payload.value))
                    body = event.model_dump(mode="json", exclude={"event_id"})
                else:  # poison: bytes that are not a valid body
                    body = {"user_id": "", "raw": payload.hex()}
                result = upstream.post("ClickEvent", body, key=submission.event_id)
            except Exception as exc:  # noqa: BLE001 - reported by the submitting thread
                tally.error = exc
                continue
            tally.add(result.attempts, result.replayed, refused=result.status >= 400)
