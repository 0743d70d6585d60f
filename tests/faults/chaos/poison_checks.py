"""The poison policies under chaos (issue 23): the end-of-run release and its checks.

After the drain every parked key is released the way an operator would: each blocker still in
``oncepipe.parked_blockers`` is discarded with ``oncepipe dlq discard`` (through its dead letter
on the ``.dlq`` topic), and the run waits until the workers applied what was parked and every
delayed retry came due (``release_parked``). Then:

- ``poison_key_order_across_release``: each ``blocker-`` has one dead letter, and the later
  events of its key were applied once, in submission order, none before the release;
- ``each_killer_one_crash_dead_letter``: each ``killer-`` ends as exactly one dead letter, of
  stage ``crash``, and the events after it in its key were applied;
- ``each_retried_event_applied_once_after_its_delays``: each ``flaky-`` event was applied once,
  has no dead letter, was called at attempts 0, 1 and 2 (``chaos.flaky_attempts``, noted by the
  handler on a connection of its own), each retry at least its tier after the last failure
  before it, and the later event of its key was applied after it.

Public names: ``POISON_CHECKS``, ``release_parked``, ``killer_sources``, ``waited_aside``,
``read_marks``,
``RETRY_TIERS``, ``RETRY_TIERS_S``, ``FLAKY_DDL``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumers.deadletter_headers import CONSUMER_GROUP, STAGE
from tests.faults.chaos.evidence import Coordinates, Evidence, source_of
from tests.faults.chaos.topic import TopicRecord, read_all
from tests.faults.chaos.verdict import CheckResult, Observations
from tests.faults.chaos.workers import ONCEPIPE
from tests.fixtures.crash_handlers import FLAKY_FAILURES

if TYPE_CHECKING:
    from tests.faults.chaos.pipeline import Pipeline

__all__ = [
    "FLAKY_DDL",
    "POISON_CHECKS",
    "RETRY_TIERS",
    "RETRY_TIERS_S",
    "killer_sources",
    "read_marks",
    "release_parked",
    "waited_aside",
]

RETRY_TIERS = "2,4,8"  # ONCEPIPE_CONSUMER_RETRY_TIERS of the chaos consumers: short, in the run
RETRY_TIERS_S = tuple(float(t) for t in RETRY_TIERS.split(","))
# A retry is due a tier after its move commits; the handler notes the failed attempt a little
# before that commit (the rest of its batch), so a gap may fall short of its tier by that much.
SLACK_S = 0.5
# Every handler call of a flaky event (tests.fixtures.crash_handlers.marked_clicks).
FLAKY_DDL = """
CREATE SCHEMA IF NOT EXISTS chaos;
CREATE TABLE chaos.flaky_attempts (
    consumer_group text  NOT NULL,
    event_id text        NOT NULL,
    attempt  integer     NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

Log = Callable[[str], None]

_PENDING = """
SELECT (SELECT count(*) FROM oncepipe.parked_blockers WHERE consumer_group = ANY(%(g)s)),
       (SELECT count(*) FROM oncepipe.parked_events WHERE consumer_group = ANY(%(g)s)),
       (SELECT count(*) FROM oncepipe.consumer_retries WHERE consumer_group = ANY(%(g)s))
"""


def _dead_letter_refs(pipeline: Pipeline, blockers: set[tuple[str, str, int, int]]) -> list[str]:
    """``<dlq-topic>:<partition>:<offset>`` of each blocker's dead letter (group, source)."""
    bootstrap = pipeline.services.kafka.bootstrap_servers
    refs: dict[tuple[str, str, int, int], str] = {}
    for dlq_topic in pipeline.dlq_topics().values():
        for record in read_all(bootstrap, dlq_topic, keep_headers=True):
            source = source_of(record)
            group = record.headers.get(CONSUMER_GROUP, "")
            if source is not None and (group, *source) in blockers:
                refs[(group, *source)] = f"{dlq_topic}:{record.partition}:{record.offset}"
    return sorted(set(refs.values()))


def release_parked(
    pipeline: Pipeline, log: Log, timeout: float = 180.0
) -> tuple[bool, str, datetime | None]:
    """Discard every blocker of the run's groups, then wait until nothing is parked or due.

    Returns (released, detail, the database's clock when the release began)."""
    groups = pipeline.groups()
    started = time.monotonic()
    with pipeline.connect() as conn:
        row = conn.execute("SELECT now()").fetchone()
    began: datetime | None = row[0] if row else None
    discarded: set[str] = set()
    detail = ""
    while time.monotonic() - started < timeout:
        with pipeline.connect() as conn:
            blockers = {
                (g, t, p, o)
                for g, t, p, o in conn.execute(
                    'SELECT consumer_group, topic, partition, "offset"'
                    " FROM oncepipe.parked_blockers"
                    " WHERE consumer_group = ANY(%s) AND state = 'parked'",
                    (groups,),
                )
            }
            row = conn.execute(_PENDING, {"g": groups}).fetchone()
        pending = tuple(int(n) for n in row) if row else (0, 0, 0)
        detail = f"{pending[0]} blockers, {pending[1]} parked events, {pending[2]} retries left"
        if not any(pending):
            log(
                f"chaos: released in {time.monotonic() - started:.0f}s ({len(discarded)} discarded)"
            )
            return True, detail, began
        refs = [r for r in _dead_letter_refs(pipeline, blockers) if r not in discarded]
        if refs:
            _discard(pipeline, refs)
            discarded.update(refs)
        time.sleep(2.0)
    log(f"chaos: not released after {timeout:.0f}s: {detail}")
    return False, detail, began


def _discard(pipeline: Pipeline, refs: list[str]) -> None:
    done = subprocess.run(
        [ONCEPIPE, "dlq", "discard", "--yes", "--json", *refs],
        env=pipeline.workers.base_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"dlq discard failed: {done.stderr.strip()[-300:]}")


def waited_aside(ev: Evidence) -> set[str]:
    """Events applied out of partition order on purpose: with park-key (the run released its
    parked keys), every event of a key that has a dead letter or a delayed retry waits aside
    from its partition; their per-key order is checked instead."""
    if ev.released_at is None:
        return set()
    keys = {(m["topic"], m["key"]) for m in ev.marks}
    places = {(topic, r.partition, r.offset): r for topic, rs in ev.records.items() for r in rs}
    for source in ev.dead_letters:
        record = places.get(source)
        if record is not None:
            keys.add((source[0], record.key))
    return {
        r.event_id
        for topic, records in ev.records.items()
        for r in records
        if r.event_id is not None and (topic, r.key) in keys
    }


def killer_sources(ev: Evidence) -> set[Coordinates]:
    """The source coordinates of the run's killer records (their ``crash`` dead letters are
    expected)."""
    return {_where(m) for m in ev.marks if m["mark"] == "killer"}


def _where(mark: dict[str, Any]) -> Coordinates:
    return (mark["topic"], int(mark["partition"]), int(mark["offset"]))


def _letters(ev: Evidence, mark: dict[str, Any]) -> list[TopicRecord]:
    return [
        r
        for r in ev.dead_letter_records.get(_where(mark), [])
        if r.headers.get(CONSUMER_GROUP) == ev.group
    ]


def _applies(ev: Evidence) -> tuple[Counter[str], dict[str, tuple[int, int]]]:
    counts = Counter(row.event_id for row in ev.witness)
    order = {row.event_id: row.sequence for row in ev.witness}
    return counts, order


def _later_in_order(
    ev: Evidence, mark: dict[str, Any], result: CheckResult, after: tuple[int, int] | None
) -> None:
    counts, order = _applies(ev)
    later: list[str] = mark["later"]
    for event_id in later:
        if counts[event_id] != 1:
            result.violate(
                f"{mark['mark']} key {mark['key']}: {event_id} applied {counts[event_id]}x"
            )
    seqs = [order[e] for e in later if e in order]
    if seqs != sorted(seqs):
        result.violate(f"{mark['mark']} key {mark['key']}: later events applied out of order")
    if after is not None and seqs and seqs[0] < after:
        result.violate(f"{mark['mark']} key {mark['key']}: a later event applied before it")


def check_poison_key_order(ev: Evidence, _obs: Observations) -> CheckResult:
    """Each blocker: one dead letter; the events after it applied once, in order, after the
    release (the end-of-run discard), never while it was parked."""
    result = CheckResult("poison_key_order_across_release", "23.1")
    result.checked += 1  # the run itself: a run without poison keys passes
    released_at = ev.released_at
    for mark in (m for m in ev.marks if m["mark"] == "blocker"):
        result.checked += 1
        letters = len(_letters(ev, mark))
        if ev.dead_letters.get(_where(mark), 0) != 1 or letters == 0:
            result.violate(f"blocker {_where(mark)}: {letters} dead letters, want 1")
        _later_in_order(ev, mark, result, None)
        for event_id in mark["later"]:
            row = ev.inbox.get(event_id)
            if row is not None and released_at is not None and row.applied_at < released_at:
                result.violate(f"blocker key {mark['key']}: {event_id} applied while parked")
    return result


def check_killers(ev: Evidence, _obs: Observations) -> CheckResult:
    """Each killer: exactly one dead letter, of stage ``crash``; the rest of its key applied."""
    result = CheckResult("each_killer_one_crash_dead_letter", "23.2")
    result.checked += 1  # the run itself
    counts, _ = _applies(ev)
    for mark in (m for m in ev.marks if m["mark"] == "killer"):
        result.checked += 1
        stages = [r.headers.get(STAGE) for r in _letters(ev, mark)]
        if ev.dead_letters.get(_where(mark), 0) != 1 or stages[:1] != ["crash"]:
            result.violate(f"killer {_where(mark)}: dead letters {stages}, want one crash")
        if counts[mark["event_id"]]:
            result.violate(f"killer {_where(mark)} applied (it kills its worker)")
        _later_in_order(ev, mark, result, None)
    return result


def check_retried(ev: Evidence, _obs: Observations) -> CheckResult:
    """Each flaky event: applied once, no dead letter, called at attempts 0 .. FLAKY_FAILURES
    with each retry at least its tier after the last failure of the attempt before, and the
    later event of its key applied after it."""
    result = CheckResult("each_retried_event_applied_once_after_its_delays", "23.3")
    result.checked += 1  # the run itself
    counts, order = _applies(ev)
    for mark in (m for m in ev.marks if m["mark"] == "flaky"):
        result.checked += 1
        event_id = mark["event_id"]
        if counts[event_id] != 1:
            result.violate(f"flaky {event_id} applied {counts[event_id]} times")
        if ev.dead_letters.get(_where(mark), 0):
            result.violate(f"flaky {event_id} dead-lettered")
        _delays(ev.flaky_attempts.get(event_id, []), event_id, result)
        _later_in_order(ev, mark, result, order.get(event_id))
    return result


def _delays(calls: list[tuple[int, datetime]], event_id: str, result: CheckResult) -> None:
    by_attempt: dict[int, list[datetime]] = {}
    for attempt, at in calls:
        by_attempt.setdefault(attempt, []).append(at)
    if sorted(by_attempt) != list(range(FLAKY_FAILURES + 1)):
        result.violate(f"flaky {event_id}: attempts {sorted(by_attempt)}")
        return
    for attempt in range(1, FLAKY_FAILURES + 1):
        gap = (min(by_attempt[attempt]) - max(by_attempt[attempt - 1])).total_seconds()
        tier = RETRY_TIERS_S[attempt - 1]
        if gap < tier - SLACK_S:
            result.violate(f"flaky {event_id}: attempt {attempt} {gap:.2f}s after the last "
                           f"failure (tier {tier:.0f}s)")  # fmt: skip


POISON_CHECKS = [check_poison_key_order, check_killers, check_retried]


def read_marks(path: Path) -> list[dict[str, Any]]:
    """The marks manifest's lines (empty when no poison fault ran)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
