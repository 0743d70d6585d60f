"""The chaos harness in queue mode (``--mode queue``): share-group workers, what applies to them.

The consumers run ``oncepipe consume --mode queue`` on the run's two topics of one partition
each, 4 workers at the start and 5 at most (member faults move between them). The share group
spreads a group's topic-partitions over its members, each partition to one member only while
there are no more members than partitions (measured: with 2 topics of 2 partitions and 3
members, a killed member's records came back only when its share session expired, ~47 s, not
at its 15 s locks). With at least twice as many members as topic-partitions every partition
has two members or more, so a record whose worker died or stalled is redelivered to another
live member once its lock expires. The group's record lock is 15 s (the broker's minimum: a
stall past it stays short, so a run sees many) with the default batch deadline (half of it),
and the delivery limit is 6: a killer record dies 5 times before its ``crash`` dead letter,
and an innocent record would have to be in flight at 5 faults (kills, stalls, outages) to be
wrongly dead-lettered as one. Polls of 50 records (``--batch-size``, the share consumer's
``max.poll.records``, only a hint: a poll hands out whole producer batches). Redelivered
records run in chunks at deliveries 2 and 3 and alone at 4 and 5, so a poll of hundreds of
them finishes inside the 7.5 s deadline (one per transaction, ~15 a second on a loaded
machine, the rest used to be released, charged one more delivery, again and again).

Faults not drawn in queue mode (``NOT_APPLICABLE_KINDS``): ``poison_key`` (``--on-poison
park-key`` needs per-key order, and queue mode refuses it) and ``flaky_dependency`` (its check
measures the retry tiers; in queue mode a ``RetryLater`` record is released and comes again).
``lock_stall`` (a worker SIGSTOPped past its locks, not past its share session) is drawn in
queue mode only.

Checks not applicable in queue mode (``NOT_APPLICABLE_CHECKS``): those that read the stored
offsets (``oncepipe.consumer_offsets`` stays empty for a share group) or assume partition order
(given up in queue mode). ``every_record_applied_or_dead_lettered`` replaces
``every_record_consumed``, and the drain waits for the same: every record of the topics applied
(its event in the group's inbox) or dead-lettered by the group.

Public names: ``LOCK_DURATION_MS``, ``DELIVERY_LIMIT``, ``NOT_APPLICABLE_KINDS``,
``NOT_APPLICABLE_CHECKS``, ``QUEUE_ONLY_KINDS``, ``queue_config``, ``queue_consumer_env``,
``applicable_kinds``, ``queue_drained``, ``check_every_record_settled``, ``queue_note``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import psycopg

from consumers.deadletter_headers import CONSUMER_GROUP
from tests.faults.chaos.evidence import Coordinates, Evidence, source_of
from tests.faults.chaos.topic import TopicRecord, read_all
from tests.faults.chaos.verdict import CheckResult, Observations

if TYPE_CHECKING:
    from tests.faults.chaos.config import ChaosConfig, FaultKind
    from tests.faults.chaos.pipeline import Pipeline

__all__ = [
    "DELIVERY_LIMIT",
    "LOCK_DURATION_MS",
    "NOT_APPLICABLE_CHECKS",
    "NOT_APPLICABLE_KINDS",
    "QUEUE_ONLY_KINDS",
    "applicable_kinds",
    "check_every_record_settled",
    "queue_config",
    "queue_consumer_env",
    "queue_drained",
    "queue_note",
]

LOCK_DURATION_MS = 15_000
DELIVERY_LIMIT = 6
NOT_APPLICABLE_KINDS: frozenset[FaultKind] = frozenset({"poison_key", "flaky_dependency"})
QUEUE_ONLY_KINDS: frozenset[FaultKind] = frozenset({"lock_stall"})
# Check name -> why it does not apply to a share group.
NOT_APPLICABLE_CHECKS: dict[str, str] = {
    "records_below_stored_offset_applied": "no stored offsets",
    "every_record_consumed": "no stored offsets (every_record_applied_or_dead_lettered instead)",
    "stored_offsets_never_backwards": "no stored offsets",
    "per_key_order_is_submission_order": "per-key order is given up",
    "applied_in_partition_order": "partition order is given up",
    "poison_key_order_across_release": "park-key is refused (it needs per-key order)",
    "each_retried_event_applied_once_after_its_delays": "no retry tiers (RetryLater releases)",
}


def queue_config(config: ChaosConfig) -> ChaosConfig:
    """``config`` for queue mode: 1 partition per topic, 4 to 5 workers, batches of 50."""
    return dataclasses.replace(
        config, mode="queue", partitions=1, consumers=4, max_consumers=5, batch_size=50
    )


def queue_consumer_env(config: ChaosConfig) -> dict[str, str]:
    """The queue settings of every chaos worker (the group configs it sets at start); a short
    round may lower the delivery limit (``extra["queue_delivery_limit"]``): each death of a
    killer costs a lock duration."""
    limit = config.extra.get("queue_delivery_limit", str(DELIVERY_LIMIT))
    return {
        "ONCEPIPE_QUEUE_LOCK_DURATION_MS": str(LOCK_DURATION_MS),
        "ONCEPIPE_QUEUE_DELIVERY_LIMIT": limit,
        "ONCEPIPE_CONSUMER_ON_POISON": "skip",
    }


def applicable_kinds(config: ChaosConfig, kinds: list[FaultKind]) -> list[FaultKind]:
    """The fault kinds of ``kinds`` that a run in ``config.mode`` draws."""
    if config.mode == "queue":
        return [k for k in kinds if k not in NOT_APPLICABLE_KINDS]
    return [k for k in kinds if k not in QUEUE_ONLY_KINDS]


def queue_note() -> str:
    """The report line naming the checks left out, and why."""
    return "not applicable in queue mode: " + "; ".join(
        f"{name} ({why})" for name, why in NOT_APPLICABLE_CHECKS.items()
    )


def _unsettled(
    records: dict[str, list[TopicRecord]],
    applied: set[str],
    dead_lettered: set[Coordinates],
) -> list[Coordinates]:
    """Records neither applied (their event in the inbox) nor dead-lettered."""
    return [
        (topic, r.partition, r.offset)
        for topic, rs in records.items()
        for r in rs
        if (r.event_id is None or r.event_id not in applied)
        and (topic, r.partition, r.offset) not in dead_lettered
    ]


def check_every_record_settled(ev: Evidence, obs: Observations) -> CheckResult:
    """After the drain every record of the topics is applied (its event has the group's inbox
    row) or dead-lettered by the group: queue mode's ``every_record_consumed``."""
    result = CheckResult("every_record_applied_or_dead_lettered", "1 (after the drain)")
    result.checked = sum(len(rs) for rs in ev.records.values())
    for where in _unsettled(ev.records, set(ev.inbox), set(ev.dead_letters)):
        result.violate(f"{where[0]}[{where[1]}]@{where[2]} neither applied nor dead-lettered")
    if not obs.drained:
        result.violate(f"not drained: {obs.drain_detail}")
    return result


def queue_drained(pipeline: Pipeline) -> tuple[bool, str]:
    """Simulators done, outbox published, and for every group each record of the topics
    applied or dead-lettered (read back from the topics and the dead-letter topics)."""
    if not pipeline.simulators_done():
        return False, "simulators still submitting"
    groups = pipeline.groups()
    try:
        with pipeline.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM oncepipe.outbox WHERE published_at IS NULL"
            ).fetchone()
            applied: dict[str, set[str]] = {group: set() for group in groups}
            for group, event_id in conn.execute(
                "SELECT consumer_group, event_id::text FROM oncepipe.inbox"
                " WHERE consumer_group = ANY(%s)",
                (groups,),
            ):
                applied[group].add(event_id)
    except psycopg.Error as exc:
        return False, f"database: {exc}"
    pending = int(row[0]) if row else 0
    if pending:
        return False, f"{pending} outbox rows unpublished"
    bootstrap = pipeline.settings.kafka_bootstrap_servers
    records = {topic: read_all(bootstrap, topic) for topic in pipeline.topics.values()}
    letters: dict[str, set[Coordinates]] = {group: set() for group in groups}
    for dlq_topic in pipeline.dlq_topics().values():
        for record in read_all(bootstrap, dlq_topic, keep_headers=True):
            source, group = source_of(record), record.headers.get(CONSUMER_GROUP, "")
            if source is not None and group in letters:
                letters[group].add(source)
    behind = sum(len(_unsettled(records, applied[g], letters[g])) for g in groups)
    return behind == 0, f"{behind} records neither applied nor dead-lettered"
