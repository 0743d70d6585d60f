"""The faults a record or a refusal brings, not a crash: hostile records, a record at the size
limit, raw poison, a second consumer group, a read-only database, unwritable partitions.

``Injector`` (faults.py) inherits these; each takes ``(record, rng, option)`` like the others.
Records whose dead letters must carry their bytes back go to the poison manifest with those
bytes (``hostile.exact_line``); valid events go to the hostile manifest like any submission.

Public names: ``RecordFaults``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producers.outbox import event_headers
from schemas import ClickAction, ClickEvent, Codec
from tests.faults.chaos import hostile, outages
from tests.faults.chaos.hostile import HOSTILE_HEADERS, NON_UTF8_NAME, HostileRecord
from tests.faults.chaos.topic import end_offsets

if TYPE_CHECKING:
    from tests.faults.chaos.faults import FaultRecord
    from tests.faults.chaos.pipeline import Pipeline

__all__ = ["RecordFaults"]

UNDECODABLE = b"not avro: \x00\xff"  # no single-object marker: dead-lettered at once


class RecordFaults:
    """Record and refusal faults (a mixin of ``Injector``)."""

    pipeline: Pipeline
    codec: Codec
    poison_records: int
    hostile_records: int

    # -- manifests -----------------------------------------------------------------------------
    def _exact(self, placed: Iterable[tuple[Any, HostileRecord]], *, readable: bool) -> int:
        lines = [hostile.exact_line(where, rec, readable=readable) for where, rec in placed]
        with self.pipeline.poison_manifest.open("a") as manifest:
            manifest.writelines(json.dumps(line) + "\n" for line in lines)
        self.poison_records += len(lines)
        return len(lines)

    def _bootstrap(self) -> str:
        return self.pipeline.services.kafka.bootstrap_servers

    # -- records -------------------------------------------------------------------------------
    def _poison_records(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """Oversized and undecodable records written straight into the direct topic."""
        if not self.pipeline.config.raw_poison:
            raise RuntimeError("raw poison needs the dead-letter writer (raw_poison is off)")
        topic = self.pipeline.topics["direct"]
        key = f"poison-{rng.randrange(1000)}".encode()
        records = [
            HostileRecord(key, b"\xc3\x01" + rng.randbytes(40)),  # unknown schema fingerprint
            HostileRecord(key, rng.randbytes(900_000)),
        ]
        placed = hostile.produce(self._bootstrap(), topic, records)
        count = self._exact(zip(placed, records, strict=True), readable=True)
        record.target, record.detail = topic, f"{count} records"

    def _near_limit_record(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """An undecodable record just under the topic's limit: its dead letter is bigger."""
        topic = self.pipeline.topics["direct"]
        big = HostileRecord(f"near-limit-{rng.randrange(1000)}".encode(),
                            UNDECODABLE + rng.randbytes(hostile.NEAR_LIMIT_BYTES - 12))  # fmt: skip
        placed = hostile.produce(self._bootstrap(), topic, [big])
        self._exact(zip(placed, [big], strict=True), readable=True)
        assert big.value is not None
        record.target, record.detail = f"{topic}@{placed[0][1:]}", f"{len(big.value)} bytes"

    def _hostile_events(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """Valid events carrying header values that are not text: each must be applied."""
        topic = self.pipeline.topics["direct"]
        records, lines = [], []
        for _ in range(3):
            self.hostile_records += 1
            event = ClickEvent(
                event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                user_id=f"hostile-user-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}",
                item_id=f"item-{rng.randrange(self.pipeline.config.items)}",
                action=rng.choice(list(ClickAction)),
                occurred_at=datetime.now(UTC),
                session_id="hostile-session",
                surface="chaos",
            )
            encoded = self.codec.encode(event)
            named = [(n.encode(), v.encode()) for n, v in event_headers(encoded)]
            records.append(HostileRecord(encoded.key, encoded.value, (*named, *HOSTILE_HEADERS)))
            lines.append({
                "seq": self.hostile_records, "kind": "event", "event_id": str(event.event_id),
                "key": event.user_id, "item_id": event.item_id, "action": event.action.value,
                "poison_kind": None,
            })  # fmt: skip
        placed = hostile.produce(self._bootstrap(), topic, records)
        with self.pipeline.hostile_manifest.open("a") as manifest:
            manifest.writelines(json.dumps(line) + "\n" for line in lines)
        record.target, record.detail = topic, f"{len(placed)} events with NUL/ff fe 80/null values"

    def _hostile_poison(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """Undecodable records and a tombstone with hostile header values; an undecodable
        record with a non-UTF-8 header name (the tests' raw protocol writer)."""
        topic = self.pipeline.topics["direct"]
        key = f"hostile-poison-{rng.randrange(1000)}".encode()
        records = [
            HostileRecord(key, UNDECODABLE + rng.randbytes(20), HOSTILE_HEADERS),
            HostileRecord(key, None, HOSTILE_HEADERS),  # a tombstone
            HostileRecord(key, None),
        ]
        placed = hostile.produce(self._bootstrap(), topic, records)
        count = self._exact(zip(placed, records, strict=True), readable=True)
        record.target, record.detail = topic, f"{count} with hostile values or null values"
        record.detail += self._non_utf8_names(topic, rng)

    def _non_utf8_names(self, topic: str, rng: random.Random) -> str:
        """Through the raw writer; found again by key."""
        key = f"non-utf8-name-{uuid.UUID(int=rng.getrandbits(128)).hex}".encode()
        bad = HostileRecord(key, UNDECODABLE, (NON_UTF8_NAME, *HOSTILE_HEADERS))
        since = end_offsets(self._bootstrap(), topic)
        hostile.produce_with_non_utf8_header_names(self._bootstrap(), topic, [bad])
        found = hostile.locate(self._bootstrap(), topic, since, {key})
        self._exact(((where, bad) for _, where in found), readable=False)
        return f"; {len(found)} with a non-UTF-8 header name"

    # -- a second consumer group -------------------------------------------------------------------
    def _second_group(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """Start a second group's consumer on the same topics; later, SIGKILL and restart it."""
        workers = self.pipeline.workers
        members = [p for p in workers.of("second_consumer") if p.alive()]
        if not members:
            proc = self.pipeline.add_consumer("second_consumer")
            record.target, record.detail = proc.name, f"group {self.pipeline.second_group}"
            return
        proc = rng.choice(sorted(members, key=lambda p: p.name))
        proc.held = True
        workers.kill(proc)
        pause = rng.uniform(0.2, 3.0)
        time.sleep(pause)
        workers.start(proc)
        proc.held = False
        record.target, record.detail = proc.name, f"SIGKILL, restarted after {pause:.1f}s"

    # -- refusals ------------------------------------------------------------------------------
    def _read_only_database(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """New sessions read-only, the workers' sessions terminated; then writable again."""
        pipeline = self.pipeline
        record.target = pipeline.database
        record.detail = outages.read_only_episode(
            pipeline.admin_url, pipeline.database, rng.uniform(3.0, 8.0)
        )

    def _partition_unavailable(self, record: FaultRecord, rng: random.Random, _opt: str) -> None:
        """The relay's topic refuses acks=all writes (too few in-sync replicas) for a while."""
        kafka = self.pipeline.services.kafka
        topic = self.pipeline.topics["outbox"]
        record.target = topic
        record.detail = outages.partitions_unwritable(
            kafka, topic, node=rng.randint(1, len(kafka.nodes)),
            min_isr=self.pipeline.topic_settings.min_insync_replicas,
            seconds=rng.uniform(5.0, 12.0),
        )  # fmt: skip
