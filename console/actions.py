"""Replay and discard from the console: the dlq tool's selection, replayer, ledger and discard.

A preview reads the selected dead letters and plans without sending (``would-send`` /
``would-skip``, as ``dlq replay --dry-run``); a run replays through ``Replayer`` (the ledger
claims each dead letter before its send: at most once, whoever else replays at the same time)
or discards through ``discard_blockers``, both recording the console user as who did it.
At most ``max_action`` dead letters are taken per action.

Public names: ``Outcome``, ``Plan``, ``select``, ``preview``, ``replay``, ``discard``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from console.index import Filter, page
from consumers.dlq import (
    DeadLetter,
    DeadLetterReader,
    Replayer,
    ReplayOutcome,
    Selection,
    discard_blockers,
    format_ref,
    ledger_entries,
)
from oncepipe.db import connect
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from producers import ProducerSettings

__all__ = ["Outcome", "Plan", "discard", "preview", "replay", "select"]

log = get_logger("console.actions")


@dataclass(frozen=True)
class Outcome:
    """What happened (or would) to one dead letter."""

    ref: str
    outcome: str
    """``would-send``/``would-skip`` (replay preview), ``would-discard``/``discarded``
    (discard), ``sent``/``skipped``/``failed`` (replay)."""
    destination: str | None = None
    reason: str = ""


@dataclass
class Plan:
    """What an action would do (or did): outcomes per dead letter and their counts."""

    kind: str
    letters: list[DeadLetter]
    outcomes: list[Outcome] = field(default_factory=list)
    truncated: bool = False

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes counted by kind."""
        return dict(Counter(o.outcome for o in self.outcomes))


def _outcomes(replayed: list[ReplayOutcome]) -> list[Outcome]:
    return [Outcome(o.ref, o.outcome, o.destination, o.reason) for o in replayed]


def select(
    settings: Settings, where: Filter, ref: str | None, limit: int
) -> tuple[list[DeadLetter], bool]:
    """The dead letters an action takes, and whether more than ``limit`` matched.

    A filter is answered by the dead-letter index, the rows the console's pages show (one not
    indexed yet is not taken), and only those records are then read from Kafka: an action on a
    topic of a million dead letters never scans it.
    """
    reader = DeadLetterReader(settings)
    if ref:
        return reader.select(Selection(refs=(ref,))).letters, False
    with connect(settings, "oncepipe-console") as conn:
        rows = page(conn, where, limit=limit + 1)
    refs = [format_ref(r.dlq_topic, r.dlq_partition, r.dlq_offset) for r in rows[:limit]]
    scan = reader.fetch_many(refs)
    for reason in scan.skipped:
        log.warning("indexed dead letter not taken", reason=reason)
    return scan.letters, len(rows) > limit


def preview(settings: Settings, kind: str, where: Filter, ref: str | None, limit: int) -> Plan:
    """The dry run: nothing is sent, discarded or recorded in the ledger."""
    letters, truncated = select(settings, where, ref, limit)
    plan = Plan(kind, letters, truncated=truncated)
    if kind == "replay":
        plan.outcomes = _outcomes(Replayer(settings, ProducerSettings()).plan(letters))
    else:
        with connect(settings, "oncepipe-console") as conn:
            known = ledger_entries(
                conn, [(x.dlq_topic, x.dlq_partition, x.dlq_offset) for x in letters]
            )
        for letter in letters:
            entry = known.get((letter.dlq_topic, letter.dlq_partition, letter.dlq_offset))
            done = entry is not None and entry.outcome == "discarded"
            reason = f"discarded before by {entry.replayed_by}" if done and entry else ""
            plan.outcomes.append(Outcome(letter.ref, "would-discard", None, reason))
    return plan


def replay(
    settings: Settings, where: Filter, ref: str | None, limit: int, *, actor: str, rate: float
) -> Plan:
    """Replay the selection at ``rate`` dead letters per second, each at most once."""
    letters, truncated = select(settings, where, ref, limit)
    replayer = Replayer(settings, ProducerSettings(), by=actor)
    return Plan("replay", letters, _outcomes(replayer.replay(letters, rate=rate)), truncated)


def discard(settings: Settings, where: Filter, ref: str | None, limit: int, *, actor: str) -> Plan:
    """Discard the selection: recorded in the ledger, parked keys behind it released."""
    letters, truncated = select(settings, where, ref, limit)
    with connect(settings, "oncepipe-console") as conn:
        discard_blockers(
            conn,
            [
                (
                    letter.consumer_group or "",
                    letter.source_topic or "",
                    letter.source_partition if letter.source_partition is not None else -1,
                    letter.source_offset if letter.source_offset is not None else -1,
                    letter.dlq_topic,
                    letter.dlq_partition,
                    letter.dlq_offset,
                    letter.event_id,
                )
                for letter in letters
            ],
            by=actor,
        )
    return Plan("discard", letters, [Outcome(x.ref, "discarded") for x in letters], truncated)
