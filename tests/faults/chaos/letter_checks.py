"""The dead-letter checks: every outbox row on its topic (dead letters read back from ``.dlq``),
and each dead letter of a record whose bytes are known carrying those bytes.

Public names: ``check_outbox_published``, ``check_dead_letters_byte_exact``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from consumers.deadletter_headers import CONSUMER_GROUP, PREFIX
from tests.faults.chaos.evidence import Coordinates, Evidence, source_of
from tests.faults.chaos.verdict import CheckResult, Observations

__all__ = ["check_dead_letters_byte_exact", "check_outbox_published"]


def _names_dead_letter(dedupe_id: str, source: str, group: str) -> bool:
    """True when an outbox dedupe id is the id of ``group``'s dead letter of ``source``
    (``topic:partition:offset``), with or without the group in it."""
    if dedupe_id == source:
        return True
    if group and group in dedupe_id:
        return dedupe_id.replace(group, "", 1).strip(":/@|# ") == source
    return False


def _dead_letters_on_topics(ev: Evidence) -> dict[str, dict[str, set[str]]]:
    """dlq topic -> ``topic:partition:offset`` of each dead letter on it -> the groups."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for dlq_topic, records in ev.dlq_records.items():
        for record in records:
            source = source_of(record)
            if source is not None:
                name = ":".join(str(part) for part in source)
                found[dlq_topic][name].add(record.headers.get(CONSUMER_GROUP, ""))
    return found


def check_outbox_published(ev: Evidence, _obs: Observations) -> CheckResult:
    """No committed outbox row is left unpublished, and each one is on its topic: events by
    event_id, dead letters by their source coordinates and group, read back from ``.dlq``."""
    result = CheckResult("outbox_rows_all_published", "1,7")
    on_topic = {(topic, r.event_id) for topic, records in ev.records.items() for r in records}
    letters = _dead_letters_on_topics(ev)
    for topic, dedupe_id, published, failed in ev.outbox:
        result.checked += 1
        if not published or failed:
            result.violate(f"outbox row {topic}/{dedupe_id} unpublished (failed={failed})")
        elif topic in ev.records and (topic, dedupe_id) not in on_topic:
            result.violate(f"outbox row {topic}/{dedupe_id} marked published, not on the topic")
        elif topic in ev.dlq_records and not any(
            _names_dead_letter(dedupe_id, source, group)
            for source, groups in letters.get(topic, {}).items()
            for group in groups
        ):
            result.violate(f"dead letter {topic}/{dedupe_id} marked published, not on the topic")
    for where in ev.unreadable_dead_letters:
        result.checked += 1
        result.violate(f"dead letter at {where}: headers unreadable, nobody can tell its source")
    return result


def _exact_problem(line: dict[str, Any], letter: Any) -> str:
    """What differs between a dead letter and the record it stands for ('' when nothing)."""
    if letter.raw_key != bytes.fromhex(line["key"]):
        return f"key {letter.raw_key!r} is not {line['key']}"
    if letter.value_digest != line["value"]:
        what = "a null value (tombstone)" if line["value"] is None else "the record's value"
        return f"value ({letter.size} bytes, digest {letter.value_digest}) is not {what}"
    if line["headers"] is None:
        return ""  # names the client cannot read: only key and value are promised
    want = [(bytes.fromhex(n).decode(), None if v is None else bytes.fromhex(v))
            for n, v in line["headers"]]  # fmt: skip
    got = [(n, v) for n, v in letter.raw_headers or () if not n.startswith(PREFIX)]
    if got != want:
        diff = next((f"{g!r} != {w!r}" for g, w in zip(got, want, strict=False) if g != w), "")
        return f"original headers differ: {diff or f'{len(got)} headers, not {len(want)}'}"
    return ""


def check_dead_letters_byte_exact(ev: Evidence, _obs: Observations) -> CheckResult:
    """Each dead letter of a record whose bytes are known carries its key, value (a null one
    stays null) and original headers (NUL bytes, non-UTF-8 values, nulls) byte for byte."""
    result = CheckResult("dead_letters_byte_exact", "7,8 (DESIGN §3)")
    for line in ev.exact:
        where: Coordinates = (line["topic"], int(line["partition"]), int(line["offset"]))
        letters = ev.dead_letter_records.get(where, [])
        result.checked += 1
        if not letters:
            result.violate(f"{where}: no dead letter to compare")
        for letter in letters:
            problem = _exact_problem(line, letter)
            if problem:
                result.violate(f"{where}: {problem}")
    return result
