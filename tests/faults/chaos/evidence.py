"""Everything the end-of-run checks look at, loaded once: database rows, topics, manifests.

The topics and manifests are read once (``load_shared``); the database rows and the dead
letters are per consumer group (``load_group``): a run with a second group checks each
group's evidence on its own.

Public names: ``Evidence``, ``InboxRow``, ``ClickRow``, ``load_evidence``, ``load_shared``,
``load_group``, ``read_manifest``, ``tally_dead_letters``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from consumers.deadletter_headers import (
    CONSUMER_GROUP,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
)
from tests.faults.chaos.shard_checks import ShardClaim, read_shard_claims
from tests.faults.chaos.topic import TopicRecord, end_offsets, read_all
from tests.fixtures.witness import WitnessRow, load_witness

__all__ = [
    "ClickRow",
    "Coordinates",
    "Evidence",
    "InboxRow",
    "load_evidence",
    "load_group",
    "load_shared",
    "read_manifest",
    "source_of",
    "tally_dead_letters",
]

Coordinates = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One ``oncepipe.inbox`` row of the group."""

    event_id: str
    topic: str
    partition: int
    offset: int
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class ClickRow:
    """One ``public.click_events`` row of the group."""

    event_id: str
    user_id: str
    item_id: str
    action: str


@dataclass
class Evidence:
    """The state of a drained run, read from PostgreSQL, the topics and the manifests."""

    topics: dict[str, str]  # mode -> topic
    group: str = ""
    records: dict[str, list[TopicRecord]] = field(default_factory=dict)  # topic -> records
    ends: dict[str, dict[int, int]] = field(default_factory=dict)
    # source -> how many dead-letter decisions (distinct dead letters) the .dlq topics hold
    dead_letters: dict[Coordinates, int] = field(default_factory=dict)
    # source -> byte-identical extra copies: one outbox row the relay re-sent after a crash
    dead_letter_copies: dict[Coordinates, int] = field(default_factory=dict)
    # source -> this group's dead-letter records as they are on the .dlq topic (bytes kept)
    dead_letter_records: dict[Coordinates, list[TopicRecord]] = field(default_factory=dict)
    # every group's: .dlq topic -> records; and the ones whose headers cannot be read
    dlq_records: dict[str, list[TopicRecord]] = field(default_factory=dict)
    unreadable_dead_letters: list[Coordinates] = field(default_factory=list)
    witness: list[WitnessRow] = field(default_factory=list)  # this group's applies, in order
    inbox: dict[str, InboxRow] = field(default_factory=dict)
    clicks: list[ClickRow] = field(default_factory=list)
    item_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    user_item_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    stored: dict[tuple[str, int], int] = field(default_factory=dict)
    offset_history: list[tuple[str, int, int | None, int, str]] = field(default_factory=list)
    outbox: list[tuple[str, str, bool, bool]] = field(default_factory=list)
    manifests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # topic -> lines
    poison_coordinates: list[Coordinates] = field(default_factory=list)
    # poison manifest lines whose dead letter must carry the record's bytes (hostile.py)
    exact: list[dict[str, Any]] = field(default_factory=list)
    shard_claims: list[ShardClaim] = field(default_factory=list)  # the relays' (shard_checks.py)
    # the poison faults' marked records, and when the end-of-run release began (poison_checks.py)
    marks: list[dict[str, Any]] = field(default_factory=list)
    released_at: datetime | None = None
    flaky_attempts: dict[str, list[tuple[int, datetime]]] = field(default_factory=dict)


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a manifest (empty when the file does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def source_of(record: TopicRecord) -> Coordinates | None:
    """The source coordinates a dead-letter record names (None: not an oncepipe dead letter)."""
    headers = record.headers
    try:
        return (
            headers[ORIGINAL_TOPIC],
            int(headers[ORIGINAL_PARTITION]),
            int(headers[ORIGINAL_OFFSET]),
        )
    except (KeyError, ValueError):
        return None


def _dead_letters(evidence: Evidence, group: str) -> dict[Coordinates, list[Any]]:
    """Each source record's dead letters by ``group``, as (headers, key, value) variants.

    The relay publishes at least once: killed between the broker's ack and marking the row,
    it sends the row again, a byte-identical copy. A second dead-letter DECISION for the same
    record (a batch that dead-lettered it, rolled back and ran again, say) differs in its
    failure headers (times, attempts), so distinct variants count decisions.
    """
    found: dict[Coordinates, list[Any]] = {}
    for records in evidence.dlq_records.values():
        for record in records:
            source = source_of(record)
            if source is None or record.headers.get(CONSUMER_GROUP) != group:
                continue  # not an oncepipe dead letter, or another group's
            found.setdefault(source, []).append(
                (record.raw_headers, record.raw_key, record.value_digest, record.size)
            )
            evidence.dead_letter_records.setdefault(source, []).append(record)
    return found


def tally_dead_letters(evidence: Evidence, found: dict[Coordinates, list[Any]]) -> None:
    """Count each source's distinct dead letters, and the relay's identical copies apart."""
    for source, variants in found.items():
        distinct = len(set(variants))
        evidence.dead_letters[source] = evidence.dead_letters.get(source, 0) + distinct
        if len(variants) > distinct:
            copies = evidence.dead_letter_copies.get(source, 0) + len(variants) - distinct
            evidence.dead_letter_copies[source] = copies


def load_shared(
    *,
    bootstrap: str,
    topics: dict[str, str],
    dlq_topics: dict[str, str],
    manifests: dict[str, list[Path]],
    poison_manifest: Path,
    marks_manifest: Path | None = None,
) -> Evidence:
    """What every group's checks share: the topics, the dead-letter topics, the manifests."""
    evidence = Evidence(topics=topics)
    for topic in topics.values():
        evidence.ends[topic] = end_offsets(bootstrap, topic)
        evidence.records[topic] = read_all(bootstrap, topic)
    for dlq_topic in dlq_topics.values():
        evidence.dlq_records[dlq_topic] = read_all(bootstrap, dlq_topic, keep_headers=True)
        evidence.unreadable_dead_letters += [
            (dlq_topic, r.partition, r.offset)
            for r in evidence.dlq_records[dlq_topic]
            if r.raw_headers is None
        ]
    for mode, paths in manifests.items():
        evidence.manifests[topics[mode]] = [line for p in paths for line in read_manifest(p)]
    poison = read_manifest(poison_manifest)
    evidence.poison_coordinates = [
        (p["topic"], int(p["partition"]), int(p["offset"])) for p in poison
    ]
    evidence.exact = [p for p in poison if p.get("exact")]
    evidence.marks = read_manifest(marks_manifest) if marks_manifest is not None else []
    return evidence


def load_group(shared: Evidence, url: str, group: str) -> Evidence:
    """``shared`` plus ``group``'s rows and dead letters (after the workers stopped)."""
    evidence = dataclasses.replace(
        shared,
        group=group,
        dead_letters={},
        dead_letter_copies={},
        dead_letter_records={},
        inbox={},
        flaky_attempts={},
    )
    tally_dead_letters(evidence, _dead_letters(evidence, group))
    group_only = {"group": group}
    with psycopg.connect(url, application_name="oncepipe-chaos-checks") as conn:
        evidence.witness = load_witness(conn, group)
        evidence.shard_claims = read_shard_claims(conn)
        if evidence.marks:  # the table exists: the poison policies ran (poison_checks.py)
            for event_id, attempt, at in conn.execute(
                "SELECT event_id, attempt, at FROM chaos.flaky_attempts"
                " WHERE consumer_group = %(group)s ORDER BY at",
                group_only,
            ):
                evidence.flaky_attempts.setdefault(event_id, []).append((attempt, at))
        for event_id, topic, partition, offset, applied_at in conn.execute(
            'SELECT event_id::text, topic, partition, "offset", applied_at FROM oncepipe.inbox'
            " WHERE consumer_group = %(group)s",
            group_only,
        ):
            evidence.inbox[event_id] = InboxRow(event_id, topic, partition, offset, applied_at)
        evidence.clicks = [
            ClickRow(*row)
            for row in conn.execute(
                "SELECT event_id::text, user_id, item_id, action FROM public.click_events"
                " WHERE consumer_group = %(group)s",
                group_only,
            )
        ]
        evidence.item_counts = {
            (item, action): count
            for item, action, count in conn.execute(
                "SELECT item_id, action, count FROM public.item_click_counts"
                " WHERE consumer_group = %(group)s",
                group_only,
            )
        }
        evidence.user_item_counts = {
            (user, item): count
            for user, item, count in conn.execute(
                "SELECT user_id, item_id, count FROM public.user_item_click_counts"
                " WHERE consumer_group = %(group)s",
                group_only,
            )
        }
        evidence.stored = {
            (topic, partition): offset
            for topic, partition, offset in conn.execute(
                "SELECT topic, partition, next_offset FROM oncepipe.consumer_offsets"
                " WHERE consumer_group = %(group)s",
                group_only,
            )
        }
        evidence.offset_history = list(
            conn.execute(
                "SELECT topic, partition, old_offset, new_offset, writer FROM chaos.offset_history"
                " WHERE consumer_group = %(group)s ORDER BY id",
                group_only,
            )
        )
        evidence.outbox = list(
            conn.execute(
                "SELECT topic, dedupe_id, published_at IS NOT NULL, failed_at IS NOT NULL"
                " FROM oncepipe.outbox"
            )
        )
    return evidence


def load_evidence(
    url: str,
    *,
    group: str,
    bootstrap: str,
    topics: dict[str, str],
    dlq_topics: dict[str, str],
    manifests: dict[str, list[Path]],
    poison_manifest: Path,
) -> Evidence:
    """Read everything the checks of one group need (the workers stopped)."""
    shared = load_shared(
        bootstrap=bootstrap,
        topics=topics,
        dlq_topics=dlq_topics,
        manifests=manifests,
        poison_manifest=poison_manifest,
    )
    return load_group(shared, url, group)
