"""The invariants of DESIGN.md §2, checked on the evidence of a drained run.

Each check returns a ``CheckResult``: how many things it looked at, how many violated the
invariant, and the first few violations, so a failure names the records to look at.

Applies are counted and ordered on the witness (``tests/fixtures/witness.py``): an effect log
without a unique key, so a second apply shows even where ``click_events``' primary key would
hide it, with an apply sequence that orders the events of one batch too.

The dead-letter checks live in ``letter_checks``, ``CheckResult`` and ``Observations`` in
``verdict``; all are re-exported here.

Public names: ``CheckResult``, ``run_checks``, ``run_group_checks``, ``Observations``,
``GLOBAL_CHECKS``.
"""

from __future__ import annotations

import itertools
import signal
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from tests.faults.chaos.crash_checks import check_no_innocent_crash_dead_letters
from tests.faults.chaos.evidence import Evidence
from tests.faults.chaos.letter_checks import check_dead_letters_byte_exact, check_outbox_published
from tests.faults.chaos.poison_checks import POISON_CHECKS, waited_aside
from tests.faults.chaos.shard_checks import check_shard_leases_exclusive
from tests.faults.chaos.verdict import CheckResult, Observations
from tests.fixtures.crash_handlers import KILLER_EXIT

__all__ = [
    "GLOBAL_CHECKS",
    "CheckResult",
    "Observations",
    "check_dead_letters_byte_exact",
    "check_outbox_published",
    "run_checks",
    "run_group_checks",
]


def _submitted(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["kind"] == kind]


def check_no_effect_without_inbox(ev: Evidence, obs: Observations) -> CheckResult:
    """During the run (REPEATABLE READ samples) and at the end: no click row lacks its inbox row."""
    result = CheckResult("no_effect_without_inbox_row", "2,3 (sampled during the run)")
    result.checked = obs.samples + len(ev.clicks)
    for event_id in obs.orphans:
        result.violate(f"sampled click row {event_id} without an inbox row")
    for click in ev.clicks:
        if click.event_id not in ev.inbox:
            result.violate(f"click row {click.event_id} without an inbox row at the end")
    return result


def check_offsets_covered(ev: Evidence, _obs: Observations) -> CheckResult:
    """Every record below a stored offset is applied, an absorbed duplicate, or dead-lettered.

    A duplicate is absorbed only if an EARLIER record of the same partition carried its event
    (one key, one partition): an event applied from a later copy means this record was skipped.
    """
    result = CheckResult("records_below_stored_offset_applied", "1,3")
    for topic, records in ev.records.items():
        for record in records:
            stored = ev.stored.get((topic, record.partition), 0)
            if record.offset >= stored:
                continue
            result.checked += 1
            where = (topic, record.partition, record.offset)
            row = ev.inbox.get(record.event_id or "")
            if row is not None and (row.topic, row.partition, row.offset) == where:
                continue  # applied from this very record
            if row is not None and (row.topic, row.partition) == where[:2]:
                if row.offset < record.offset:
                    continue  # absorbed: an earlier record of the same event was applied
                # Applied from a LATER copy: this record was skipped, and a duplicate hid it.
                result.violate(f"{topic}[{record.partition}]@{record.offset} skipped, its event "
                               f"{record.event_id} applied later from @{row.offset}")  # fmt: skip
                continue
            if ev.dead_letters.get(where):
                continue
            result.violate(f"{topic}[{record.partition}]@{record.offset} ({record.event_id}) lost")
    for (topic, partition), stored in ev.stored.items():
        end = ev.ends.get(topic, {}).get(partition, 0)
        if stored > end:
            result.violate(f"{topic}[{partition}] stored offset {stored} beyond the end {end}")
    return result


def check_everything_consumed(ev: Evidence, obs: Observations) -> CheckResult:
    """After the drain every partition's stored offset is at its end."""
    result = CheckResult("every_record_consumed", "1 (after the drain)")
    for topic, ends in ev.ends.items():
        for partition, end in ends.items():
            result.checked += 1
            stored = ev.stored.get((topic, partition), 0)
            if stored != end:
                result.violate(f"{topic}[{partition}] stored {stored}, end {end}")
    if not obs.drained:
        result.violate(f"not drained: {obs.drain_detail}")
    return result


def check_inbox_points_at_records(ev: Evidence, _obs: Observations) -> CheckResult:
    """Every inbox row names a record of the topic that carries the same event_id."""
    result = CheckResult("inbox_rows_match_their_records", "3")
    by_place = {
        (topic, r.partition, r.offset): r.event_id
        for topic, records in ev.records.items()
        for r in records
    }
    for row in ev.inbox.values():
        result.checked += 1
        found = by_place.get((row.topic, row.partition, row.offset))
        if found != row.event_id:
            result.violate(
                f"inbox {row.event_id} at {row.topic}[{row.partition}]@{row.offset} holds {found}"
            )
    return result


def check_applied_exactly_once(ev: Evidence, _obs: Observations) -> CheckResult:
    """Each distinct submitted event was applied once (witness) and has one click row; poison
    is dead-lettered once."""
    result = CheckResult("each_event_applied_exactly_once", "1,2")
    submitted = {
        line["event_id"] for lines in ev.manifests.values() for line in _submitted(lines, "event")
    }
    applies = Counter(row.event_id for row in ev.witness)
    clicks = Counter(click.event_id for click in ev.clicks)
    result.checked = len(submitted)
    for event_id in sorted(submitted - set(applies)):
        result.violate(f"event {event_id} never applied")
    for event_id, count in applies.items():
        if count > 1:
            result.violate(f"event {event_id} applied {count} times (witness)")
        if event_id not in submitted:
            result.violate(f"event {event_id} applied, nobody submitted it")
    for event_id, count in clicks.items():
        if count > 1:
            result.violate(f"event {event_id} has {count} click rows")
    if set(applies) != set(clicks):
        result.violate(f"{len(set(applies) ^ set(clicks))} event ids in witness xor click rows")
    if set(ev.inbox) != set(clicks):
        result.violate(f"{len(set(ev.inbox) ^ set(clicks))} event ids in inbox xor click rows")
    result.checked += _check_poison(ev, result)
    return result


def _check_poison(ev: Evidence, result: CheckResult) -> int:
    """Poison records: each dead-lettered exactly once by its source coordinates."""
    poison_ids = {
        line["event_id"] for lines in ev.manifests.values() for line in _submitted(lines, "poison")
    }
    places = list(ev.poison_coordinates)
    for topic, records in ev.records.items():
        places += [(topic, r.partition, r.offset) for r in records if r.event_id in poison_ids]
    for place in places:
        if ev.dead_letters.get(place, 0) != 1:
            result.violate(f"poison {place} dead-lettered {ev.dead_letters.get(place, 0)} times")
    for place, count in ev.dead_letters.items():
        if count > 1:
            result.violate(f"{place} dead-lettered {count} times")
    for place, copies in ev.dead_letter_copies.items():
        result.notes.append(f"{place}: the relay re-sent its dead letter ({copies} identical)")
    return len(places)


def _recomputed(ev: Evidence) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    items = Counter((c.item_id, c.action) for c in ev.clicks)
    user_items = Counter((c.user_id, c.item_id) for c in ev.clicks)
    return items, user_items


def _compare(result: CheckResult, what: str, got: dict[Any, int], want: dict[Any, int]) -> None:
    for key in sorted(set(got) | set(want)):
        result.checked += 1
        if got.get(key, 0) != want.get(key, 0):
            result.violate(f"{what} {key}: {got.get(key, 0)} != {want.get(key, 0)}")


def check_counters_vs_click_events(ev: Evidence, _obs: Observations) -> CheckResult:
    """Both counter tables equal the counts recomputed from ``click_events``."""
    result = CheckResult("counters_equal_click_events", "2")
    items, user_items = _recomputed(ev)
    _compare(result, "item_click_counts", ev.item_counts, items)
    _compare(result, "user_item_click_counts", ev.user_item_counts, user_items)
    return result


def check_counters_vs_manifests(ev: Evidence, _obs: Observations) -> CheckResult:
    """Both counter tables equal the counts of the distinct events the simulators submitted."""
    result = CheckResult("counters_equal_manifests", "1,2")
    distinct = {
        line["event_id"]: line
        for lines in ev.manifests.values()
        for line in _submitted(lines, "event")
    }.values()
    items = Counter((line["item_id"], line["action"]) for line in distinct)
    user_items = Counter((line["key"], line["item_id"]) for line in distinct)
    _compare(result, "item_click_counts", ev.item_counts, items)
    _compare(result, "user_item_click_counts", ev.user_item_counts, user_items)
    return result


def check_key_order(ev: Evidence, _obs: Observations) -> CheckResult:
    """Per key, the consumer applied the events (witness apply sequence) in submission order."""
    result = CheckResult("per_key_order_is_submission_order", "5")
    for topic, lines in ev.manifests.items():
        expected: dict[str, list[str]] = defaultdict(list)
        seen: set[str] = set()  # a restarted simulator writes its replayed submissions again
        for line in sorted(_submitted(lines, "event"), key=lambda x: x["seq"]):
            if line["event_id"] not in seen:
                seen.add(line["event_id"])
                expected[line["key"]].append(line["event_id"])
        keys = {eid: key for key, ids in expected.items() for eid in ids}
        applied: dict[str, list[tuple[tuple[int, int], int, str]]] = defaultdict(list)
        for row in ev.witness:
            if row.topic == topic and row.event_id in keys:
                applied[keys[row.event_id]].append((row.sequence, row.partition, row.event_id))
        for key, ids in expected.items():
            result.checked += 1
            got = sorted(applied.get(key, []))
            if len({p for _, p, _ in got}) > 1:
                result.violate(f"{topic} key {key} applied from several partitions")
            if [eid for _, _, eid in got] != ids:
                first = next(
                    (n for n, (g, w) in enumerate(zip(got, ids, strict=False)) if g[2] != w),
                    min(len(got), len(ids)),
                )
                result.violate(f"{topic} key {key}: apply order differs at position {first}")
    return result


def check_partition_order(ev: Evidence, _obs: Observations) -> CheckResult:
    """Per partition, the records were applied in offset order (witness apply sequence)."""
    result = CheckResult("applied_in_partition_order", "5")
    by_partition: dict[tuple[str, int], list[tuple[int, tuple[int, int]]]] = defaultdict(list)
    aside = waited_aside(ev)  # parked or delayed on purpose (park-key, RetryLater)
    for row in ev.witness:
        if row.event_id in aside:
            continue
        by_partition[(row.topic, row.partition)].append((row.offset, row.sequence))
    for (topic, partition), rows in by_partition.items():
        rows.sort()
        for (o1, s1), (o2, s2) in itertools.pairwise(rows):
            result.checked += 1
            if s2 <= s1:
                result.violate(f"{topic}[{partition}] @{o2} applied before @{o1} ({s2} <= {s1})")
    return result


def check_offsets_monotonic(ev: Evidence, obs: Observations) -> CheckResult:
    """Stored offsets never went backwards: every committed change (trigger) and every sample."""
    result = CheckResult("stored_offsets_never_backwards", "3,4")
    result.checked = len(ev.offset_history) + obs.samples
    for topic, partition, old, new, writer in ev.offset_history:
        if old is not None and new < old:
            result.violate(f"{topic}[{partition}] {old} -> {new} by {writer}")
    for topic, partition, before, after in obs.sampled_regressions:
        result.violate(f"sampled {topic}[{partition}] {before} -> {after}")
    return result


def check_clean_stops(_ev: Evidence, obs: Observations) -> CheckResult:
    """Every worker stopped with SIGTERM exited 0 (it committed or rolled back its batch)."""
    result = CheckResult("sigterm_stops_exit_0", "6")
    for name, code, ready in obs.clean_stops:
        if not ready and code == -signal.SIGTERM:
            # Killed by SIGTERM before it installed its handler: it had joined nothing and
            # held no batch, so there was nothing to commit or roll back.
            result.notes.append(f"{name} got SIGTERM while starting (default action)")
            continue
        result.checked += 1
        if code != 0:
            result.violate(f"{name} exited {code} after SIGTERM")
    return result


Check = Callable[[Evidence, Observations], CheckResult]


def check_workers_wait_out_outages(_ev: Evidence, obs: Observations) -> CheckResult:
    """No consumer or relay ended on its own (a crash point that fired aside): an outage, a
    read-only database, a broker error are waited out, never a crash loop (the supervisor's
    restarts would hide one). Simulators stand for upstream services and may give up."""
    result = CheckResult("workers_wait_out_outages", "7,8")
    for name, role, code, last in obs.exits:
        if role == "simulator":
            result.notes.append(f"{name} exited {code}")
            continue
        if code == KILLER_EXIT:  # a marked killer record (poison_faults.py), not an outage
            result.notes.append(f"{name} exited {code}: a killer record")
            continue
        result.checked += 1
        result.violate(f"{name} exited {code}: {last[:160]}")
    result.checked += 1  # the run itself: no exits is a pass
    return result


CHECKS: list[Check] = [
    check_no_effect_without_inbox,
    check_offsets_covered,
    check_everything_consumed,
    check_inbox_points_at_records,
    check_applied_exactly_once,
    check_counters_vs_click_events,
    check_counters_vs_manifests,
    check_key_order,
    check_partition_order,
    check_outbox_published,
    check_offsets_monotonic,
    check_clean_stops,
    check_workers_wait_out_outages,
    check_dead_letters_byte_exact,
    check_shard_leases_exclusive,
    check_no_innocent_crash_dead_letters,
    *POISON_CHECKS,
]
# Checks of the whole run, not of one group: run once, with the first group's evidence.
GLOBAL_CHECKS: frozenset[Check] = frozenset(
    {
        check_outbox_published,
        check_clean_stops,
        check_workers_wait_out_outages,
        check_shard_leases_exclusive,
    }
)


def run_checks(
    evidence: Evidence, observations: Observations, *, skip: frozenset[Check] = frozenset()
) -> list[CheckResult]:
    """Every check but ``skip``, in a fixed order (the byte-exact one only when some record's
    bytes are known)."""
    return [
        check(evidence, observations)
        for check in CHECKS
        if check not in skip and (check is not check_dead_letters_byte_exact or evidence.exact)
    ]


def run_group_checks(groups: list[tuple[Evidence, Observations]]) -> list[CheckResult]:
    """Every check on the first group; the per-group ones again on each other group, named
    ``<check> (group <name>)``: each group applies each event once and dead-letters each
    poison record once on its own."""
    (first, first_obs), *others = groups
    results = run_checks(first, first_obs)
    for evidence, observations in others:
        for result in run_checks(evidence, observations, skip=GLOBAL_CHECKS):
            result.name = f"{result.name} (group {evidence.group})"
            results.append(result)
    return results
