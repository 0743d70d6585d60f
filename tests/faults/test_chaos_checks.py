"""The chaos checks on hand-made evidence (no services): each one names the violation it must.

The harness's end-to-end teeth are in test_chaos_defects.py; these pin the edge cases.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.faults.chaos.checks import (
    Observations,
    check_applied_exactly_once,
    check_clean_stops,
    check_counters_vs_click_events,
    check_dead_letters_byte_exact,
    check_key_order,
    check_offsets_covered,
    check_offsets_monotonic,
    check_outbox_published,
    check_partition_order,
    check_workers_wait_out_outages,
    run_checks,
    run_group_checks,
)
from tests.faults.chaos.config import (
    CLUSTER_KINDS,
    FAULT_KINDS,
    NETWORK_KINDS,
    POISON_KINDS,
    ChaosConfig,
)
from tests.faults.chaos.evidence import ClickRow, Evidence, InboxRow, tally_dead_letters
from tests.faults.chaos.hostile import HOSTILE_HEADERS, HostileRecord, exact_line
from tests.faults.chaos.queue_mode import NOT_APPLICABLE_KINDS, QUEUE_ONLY_KINDS
from tests.faults.chaos.scheduler import plan_faults
from tests.faults.chaos.shard_checks import ShardClaim
from tests.faults.chaos.topic import TopicRecord, value_digest
from tests.fixtures.witness import WitnessRow

T = "events.t"
START = datetime(2026, 1, 1, tzinfo=UTC)


def record(offset: int, event_id: str, key: str = "u1") -> TopicRecord:
    return TopicRecord(0, offset, key, event_id, 10, {})


def inbox(event_id: str, offset: int, second: int = 0) -> InboxRow:
    return InboxRow(event_id, T, 0, offset, START + timedelta(seconds=second))


def applied(event_id: str, offset: int, call: int, position: int = 1) -> WitnessRow:
    return WitnessRow(event_id, T, 0, offset, call, position)


def line(seq: int, event_id: str, kind: str = "event", key: str = "u1") -> dict[str, object]:
    return {"seq": seq, "kind": kind, "event_id": event_id, "key": key, "item_id": "i",
            "action": "click"}  # fmt: skip


def observations(**changes: object) -> Observations:
    base: dict[str, object] = {
        "samples": 1, "orphans": [], "sampled_regressions": [], "clean_stops": [],
        "drained": True, "drain_detail": "drained",
    }  # fmt: skip
    return Observations(**{**base, **changes})  # type: ignore[arg-type]


def healthy() -> Evidence:
    """a at 0, its duplicate at 1 (absorbed), b at 2: all applied, offsets at the end."""
    ev = Evidence(topics={"direct": T})
    ev.records[T] = [record(0, "a"), record(1, "a"), record(2, "b")]
    ev.ends[T] = {0: 3}
    ev.stored[(T, 0)] = 3
    ev.inbox = {"a": inbox("a", 0), "b": inbox("b", 2, 1)}
    ev.witness = [applied("a", 0, 1), applied("b", 2, 2)]
    ev.clicks = [ClickRow("a", "u1", "i", "click"), ClickRow("b", "u1", "i", "click")]
    ev.item_counts = {("i", "click"): 2}
    ev.user_item_counts = {("u1", "i"): 2}
    ev.manifests[T] = [line(0, "a"), line(1, "a", "duplicate"), line(2, "b")]
    ev.offset_history = [(T, 0, None, 2, "w"), (T, 0, 2, 3, "w")]
    ev.outbox = [(T, "b", True, False)]
    ev.shard_claims = [ShardClaim(0, "relay-a", START, None, None)]
    return ev


def test_a_healthy_run_passes_every_check() -> None:
    results = run_checks(healthy(), observations(clean_stops=[("consumer-0.1", 0, True)]))
    assert [r.name for r in results if not r.passed] == []


def test_a_record_below_the_stored_offset_without_inbox_row_is_lost() -> None:
    ev = healthy()
    ev.inbox.pop("b")
    result = check_offsets_covered(ev, observations())
    assert result.violations == 1
    assert "@2 (b) lost" in result.examples[0]


def test_a_record_whose_event_was_applied_from_a_later_copy_was_skipped() -> None:
    ev = healthy()
    ev.inbox["a"] = inbox("a", 1)  # the duplicate at 1 applied, the original at 0 skipped
    result = check_offsets_covered(ev, observations())
    assert result.violations == 1
    assert "@0 skipped" in result.examples[0]


def test_an_event_applied_twice_or_never_is_reported() -> None:
    ev = healthy()
    ev.witness.append(applied("b", 2, 3))
    ev.manifests[T].append(line(3, "c"))
    result = check_applied_exactly_once(ev, observations())
    assert any("b applied 2 times" in e for e in result.examples)
    assert any("c never applied" in e for e in result.examples)


def test_a_second_apply_hidden_by_the_click_primary_key_shows_in_the_witness() -> None:
    """click_events holds one row per event whatever happens; the witness holds every apply."""
    ev = healthy()
    ev.witness.append(applied("a", 1, 3))  # the duplicate at 1 applied again
    result = check_applied_exactly_once(ev, observations())
    assert result.examples == ["event a applied 2 times (witness)"]


def poisoned() -> Evidence:
    """healthy(), plus a poison record at 3 (dead-lettered, no inbox row)."""
    ev = healthy()
    ev.records[T].append(record(3, "p"))
    ev.manifests[T].append(line(3, "p", "poison"))
    ev.ends[T] = {0: 4}
    ev.stored[(T, 0)] = 4
    return ev


LETTER = ((("dlq.error.class", "BadMagicError"), ("dlq.failure.last", "12:00:00.001")), 90)


def test_identical_copies_of_a_dead_letter_are_one_dead_letter_the_relay_re_sent() -> None:
    ev = poisoned()
    tally_dead_letters(ev, {(T, 0, 3): [LETTER, LETTER]})
    result = check_applied_exactly_once(ev, observations())
    assert result.violations == 0, result.examples
    assert result.notes == [f"{(T, 0, 3)}: the relay re-sent its dead letter (1 identical)"]
    assert check_offsets_covered(ev, observations()).violations == 0


def test_two_different_dead_letters_of_one_record_are_reported() -> None:
    ev = poisoned()
    again = ((("dlq.error.class", "BadMagicError"), ("dlq.failure.last", "12:00:03.250")), 90)
    tally_dead_letters(ev, {(T, 0, 3): [LETTER, again]})
    result = check_applied_exactly_once(ev, observations())
    assert any("dead-lettered 2 times" in e for e in result.examples), result.examples


def test_a_poison_record_never_dead_lettered_is_reported() -> None:
    result = check_applied_exactly_once(poisoned(), observations())
    assert any("dead-lettered 0 times" in e for e in result.examples), result.examples


def test_counters_off_by_one_from_click_events_are_reported() -> None:
    ev = healthy()
    ev.item_counts[("i", "click")] = 3
    assert check_counters_vs_click_events(ev, observations()).violations == 1


def test_an_offset_that_moved_backwards_once_is_reported() -> None:
    ev = healthy()
    ev.offset_history.append((T, 0, 3, 1, "zombie"))
    result = check_offsets_monotonic(ev, observations(sampled_regressions=[(T, 0, 3, 2)]))
    assert result.violations == 2


def test_events_of_one_key_applied_out_of_submission_order_are_reported() -> None:
    ev = healthy()
    ev.manifests[T] = [line(0, "b"), line(1, "a")]
    assert check_key_order(ev, observations()).violations == 1


def test_key_order_is_the_consumers_apply_order_not_the_offsets() -> None:
    """Offsets in submission order, but the consumer applied b before a (one batch)."""
    ev = healthy()
    ev.witness = [applied("a", 0, 5, position=2), applied("b", 2, 5, position=1)]
    result = check_key_order(ev, observations())
    assert result.examples == [f"{T} key u1: apply order differs at position 0"]


def test_a_later_offset_applied_before_an_earlier_one_in_one_batch_is_reported() -> None:
    """Equal applied_at within a batch hides this; the witness's position in the call shows it."""
    ev = healthy()
    ev.witness = [applied("a", 0, 7, position=2), applied("b", 2, 7, position=1)]
    result = check_partition_order(ev, observations())
    assert result.violations == 1
    assert "@2 applied before @0" in result.examples[0]


def test_sigterm_before_the_worker_started_is_listed_not_counted() -> None:
    result = check_clean_stops(
        healthy(), observations(clean_stops=[("c.1", -15, False), ("c.2", 1, True)])
    )
    assert result.violations == 1
    assert len(result.notes) == 1


def test_the_same_seed_plans_the_same_faults() -> None:
    config = ChaosConfig(duration_s=300, seed=7)
    assert plan_faults(config) == plan_faults(config)
    assert plan_faults(config) != plan_faults(ChaosConfig(duration_s=300, seed=8))


def test_network_and_leader_faults_are_planned_only_in_their_modes() -> None:
    single = {fault.kind for fault in plan_faults(ChaosConfig(duration_s=3600, seed=7))}
    assert (
        single == set(FAULT_KINDS) - NETWORK_KINDS - CLUSTER_KINDS - POISON_KINDS - QUEUE_ONLY_KINDS
    )
    everything = ChaosConfig(
        duration_s=3600, seed=7, network=True, brokers=3, kinds=tuple(FAULT_KINDS),
        poison_policies=True,
    )  # fmt: skip
    assert {fault.kind for fault in plan_faults(everything)} == set(FAULT_KINDS) - QUEUE_ONLY_KINDS
    queue = {fault.kind for fault in plan_faults(replace(everything, mode="queue"))}
    assert queue == set(FAULT_KINDS) - NOT_APPLICABLE_KINDS


def dead_lettered(ev: Evidence, source: tuple[str, int, int], **changes: object) -> TopicRecord:
    """A dead letter of ``source`` on ``<T>.dlq`` by group g, as the topic reader sees it."""
    headers = {"dlq.original.topic": source[0], "dlq.original.partition": str(source[1]),
               "dlq.original.offset": str(source[2]), "dlq.consumer.group": "g"}  # fmt: skip
    raw = tuple((n, v.encode()) for n, v in headers.items())
    fields: dict[str, object] = {"partition": 0, "offset": 0, "key": "", "event_id": None,
                                 "size": 1, "headers": headers, "raw_headers": raw}  # fmt: skip
    letter = TopicRecord(**{**fields, **changes})  # type: ignore[arg-type]
    ev.dlq_records.setdefault(f"{T}.dlq", []).append(letter)
    return letter


def test_a_dead_letter_row_marked_published_but_not_on_its_topic_is_reported() -> None:
    ev = healthy()
    ev.outbox += [(f"{T}.dlq", f"g:{T}:0:7", True, False), (f"{T}.dlq", f"{T}:0:8", True, False)]
    dead_lettered(ev, (T, 0, 7))
    ev.dlq_records[f"{T}.dlq"].append(dead_lettered(Evidence(topics={}), (T, 0, 9)))
    result = check_outbox_published(ev, observations())
    assert result.examples == [f"dead letter {T}.dlq/{T}:0:8 marked published, not on the topic"]


def test_a_dead_letter_whose_headers_cannot_be_read_is_reported() -> None:
    ev = healthy()
    ev.unreadable_dead_letters = [(f"{T}.dlq", 0, 4)]
    assert check_outbox_published(ev, observations()).violations == 1


def exact_evidence(
    record: HostileRecord, letter_value: bytes | None, **changes: object
) -> Evidence:
    ev = healthy()
    ev.exact = [exact_line((T, 0, 5), record, readable=True)]
    raw = tuple((n.decode(), v) for n, v in record.headers)
    letter = TopicRecord(0, 0, "", None, len(letter_value or b""), {}, raw_key=record.key,
                         value_digest=value_digest(letter_value), raw_headers=raw)  # fmt: skip
    ev.dead_letter_records[(T, 0, 5)] = [replace(letter, **changes)]  # type: ignore[arg-type]
    return ev


def test_a_byte_exact_dead_letter_passes() -> None:
    record = HostileRecord(b"k", b"\x00\xff", HOSTILE_HEADERS)
    result = check_dead_letters_byte_exact(exact_evidence(record, b"\x00\xff"), observations())
    assert (result.checked, result.violations) == (1, 0)


def test_a_tombstone_dead_lettered_with_an_empty_value_is_reported() -> None:
    ev = exact_evidence(HostileRecord(b"k", None), b"")
    result = check_dead_letters_byte_exact(ev, observations())
    assert "is not a null value (tombstone)" in result.examples[0]


def test_header_values_turned_into_text_are_reported() -> None:
    record = HostileRecord(b"k", b"v", HOSTILE_HEADERS)
    texts = tuple((n.decode(), (v or b"").decode("utf-8", "replace").encode())
                  for n, v in HOSTILE_HEADERS)  # fmt: skip
    ev = exact_evidence(record, b"v", raw_headers=(*texts, ("dlq.stage", b"decode")))
    result = check_dead_letters_byte_exact(ev, observations())
    assert result.violations == 1
    assert "original headers differ" in result.examples[0]


def test_a_record_with_known_bytes_and_no_dead_letter_is_reported() -> None:
    ev = healthy()
    ev.exact = [exact_line((T, 0, 5), HostileRecord(b"k", b"v"), readable=True)]
    assert check_dead_letters_byte_exact(ev, observations()).examples == [
        f"{(T, 0, 5)}: no dead letter to compare"
    ]


def test_a_second_groups_missing_dead_letter_fails_its_own_checks() -> None:
    first, second = poisoned(), poisoned()
    second.group = "b"
    tally_dead_letters(first, {(T, 0, 3): [LETTER]})
    results = run_group_checks([(first, observations()), (second, observations())])
    failed = [r.name for r in results if not r.passed]
    assert "each_event_applied_exactly_once (group b)" in failed
    assert "each_event_applied_exactly_once" not in failed
    assert sum(r.name.startswith("outbox_rows_all_published") for r in results) == 1


def test_a_consumer_that_died_on_an_outage_is_reported_a_simulator_is_not() -> None:
    exits = [
        ("consumer-0", "consumer", 1, "psycopg.errors.ReadOnlySqlTransaction: cannot execute"),
        ("simulator-outbox", "simulator", 1, "database unreachable"),
    ]
    result = check_workers_wait_out_outages(healthy(), observations(exits=exits))
    assert result.examples == [
        "consumer-0 exited 1: psycopg.errors.ReadOnlySqlTransaction: cannot execute"
    ]
    assert result.notes == ["simulator-outbox exited 1"]
