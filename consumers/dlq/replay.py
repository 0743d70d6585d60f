"""Replaying dead letters: back to their source topic (or another), once each.

A replay record has the dead letter's key and value bytes and its original headers (so the
same ``event_id``), none of the dead-letter headers of any dialect, plus ``replay_of`` and
``replay_count``. Each chunk of dead letters goes through the ledger (``consumers.dlq.ledger``):

1. claim the chunk in a committed transaction; skip what another replay holds or sent;
2. publish the claimed ones with the idempotent producer and wait for every acknowledgement;
3. record ``sent`` (with the replay's partition and offset) or ``failed`` for each.

Without ``rate``, chunks overlap: while chunk N is queued and chunk N-1's acknowledgements
are collected, a ledger thread (the connection is used by it alone meanwhile) claims chunk N+1
in one statement that also records the outcomes collected before (step 3): one round trip and
one commit per chunk, and the database, the broker and this thread at work together. A replay
killed between 1 and 3 leaves claims (up to three chunks) that a later replay takes over once
stale; the consumer's inbox absorbs a record that was in fact sent twice.

Public names: ``ReplayOutcome``, ``Replayer``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import psycopg
from psycopg.rows import TupleRow

from consumers.dlq import ledger
from consumers.dlq.headers import DeadLetter, replay_headers
from consumers.dlq.sender import ChunkSender, OutRecord, Sent
from consumers.events import Key
from oncepipe import tracing
from oncepipe.db import connect
from oncepipe.errors import ConfigError
from oncepipe.kafka import KafkaException, broker_error, create_admin
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from producers import ProducerSettings, check_topic_name
from schemas import topic_name_problem

__all__ = ["Outcome", "ReplayOutcome", "Replayer"]

log = get_logger("dlq.replay")

Outcome = Literal["sent", "skipped", "failed", "would-send", "would-skip"]


@dataclass(frozen=True)
class ReplayOutcome:
    """What happened to one selected dead letter."""

    ref: str
    outcome: Outcome
    destination: str | None
    event_id: str | None = None
    replay_count: int | None = None
    partition: int | None = None
    offset: int | None = None
    reason: str = ""


Progress = Callable[[Sequence[ReplayOutcome]], None]


class Replayer:
    """Replays dead letters through the ledger with an idempotent, acks=all producer."""

    def __init__(
        self,
        settings: Settings,
        producer_settings: ProducerSettings,
        *,
        batch_size: int = 500,
        stale_claim_s: float = ledger.DEFAULT_STALE_CLAIM_S,
        by: str | None = None,
    ) -> None:
        """``by``: who replays, as the ledger records it (default ``user@host``)."""
        self._by = by
        self._settings = settings
        self._producer_settings = producer_settings
        self._batch_size = batch_size
        self._stale_claim_s = stale_claim_s

    def plan(
        self, letters: Sequence[DeadLetter], *, to: str | None = None, force: bool = False
    ) -> list[ReplayOutcome]:
        """What ``replay`` would do, reading the ledger but writing nothing and sending nothing."""
        routed, outcomes = self._route(letters, to)
        self._check_destinations({destination for _, destination in routed})
        with connect(self._settings, "oncepipe-dlq-replay") as conn:
            known = ledger.entries(conn, [ledger.key_of(letter) for letter, _ in routed])
        for letter, destination in routed:
            entry = known.get(ledger.key_of(letter))
            if entry is None or entry.outcome == "failed" or force:
                count = (entry.replay_count + 1) if entry else letter.replay_count + 1
                outcomes.append(
                    ReplayOutcome(letter.ref, "would-send", destination, letter.event_id, count)
                )
            else:
                outcomes.append(self._skipped(letter, destination, entry, would=True))
        return _in_order(letters, outcomes)

    def unreplayed(self, letters: Sequence[DeadLetter], limit: int) -> tuple[list[DeadLetter], int]:
        """The first ``limit`` dead letters not replayed yet, and how many replayed ones precede.

        "Replayed" is what a claim without ``force`` would pass over: sent, or claimed by a
        replay that is still running.
        """
        if not letters:
            return [], 0
        with connect(self._settings, "oncepipe-dlq-replay") as conn:
            known = ledger.entries(conn, [ledger.key_of(letter) for letter in letters])
        kept: dict[str, DeadLetter] = {}
        passed = 0
        for letter in letters:
            if len(kept) >= limit:
                break
            entry = known.get(ledger.key_of(letter))
            if ledger.is_replayable(entry, stale_after_s=self._stale_claim_s):
                kept.setdefault(letter.ref, letter)
            else:
                passed += 1
        return list(kept.values()), passed

    def replay(
        self,
        letters: Sequence[DeadLetter],
        *,
        to: str | None = None,
        force: bool = False,
        rate: float | None = None,
        progress: Progress | None = None,
        sender: ChunkSender | None = None,
    ) -> list[ReplayOutcome]:
        """Replay each dead letter at most once (``force``: once more); see the module.

        ``sender``: an open sender to send with (left open), e.g. one that serves several
        replays; by default the replay opens its own and closes it.
        """
        routed, outcomes = self._route(letters, to)
        owned = sender is None
        if sender is None:
            sender = ChunkSender(self._settings, self._producer_settings)
        try:
            # The producer's own metadata answers the check and warms it up: its first
            # records are not held while it learns the topics.
            self._check_destinations({destination for _, destination in routed}, sender)
            if progress and outcomes:
                progress(outcomes)
            chunk = self._batch_size if rate is None else max(1, min(self._batch_size, int(rate)))
            with connect(self._settings, "oncepipe-dlq-replay", autocommit=True) as conn:
                if rate is None:
                    chunks = [routed[i : i + chunk] for i in range(0, len(routed), chunk)]
                    outcomes += self._overlapped(conn, sender, chunks, force, progress)
                    return _in_order(letters, outcomes)
                for start in range(0, len(routed), chunk):
                    began = time.monotonic()
                    done = self._replay_chunk(conn, sender, routed[start : start + chunk], force)
                    outcomes += done
                    if progress:
                        progress(done)
                    if rate:
                        # Pace whole chunks: chunk / rate seconds each at the least.
                        time.sleep(max(0.0, len(done) / rate - (time.monotonic() - began)))
        finally:
            if owned:
                sender.close()
        return _in_order(letters, outcomes)

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _route(
        letters: Sequence[DeadLetter], to: str | None
    ) -> tuple[list[tuple[DeadLetter, str]], list[ReplayOutcome]]:
        routed: list[tuple[DeadLetter, str]] = []
        refused: list[ReplayOutcome] = []
        seen: set[str] = set()
        problems: dict[str, str | None] = {}  # by destination: a name is checked once
        if to is not None:
            check_topic_name(to, "--to")
        for letter in letters:
            ref = letter.ref
            if ref in seen:
                continue
            seen.add(ref)
            destination = to or letter.source_topic
            problem = None
            if destination is not None:
                if destination not in problems:
                    problems[destination] = topic_name_problem(destination)
                problem = problems[destination]
            if destination is None or problem is not None:
                reason = (
                    "the dead letter names no source topic"
                    if destination is None
                    else f"its source topic {destination!r} is not a legal name ({problem})"
                )
                refused.append(
                    ReplayOutcome(
                        letter.ref,
                        "failed",
                        None,
                        letter.event_id,
                        reason=f"{reason}; choose one with --to",
                    )
                )
            else:
                routed.append((letter, destination))
        return routed, refused

    def _check_destinations(self, topics: set[str], sender: ChunkSender | None = None) -> None:
        if not topics:
            return
        existing: Collection[str]
        if sender is not None:
            existing = sender.partition_counts(timeout=10).keys()
        else:
            try:
                existing = create_admin(self._settings).list_topics(timeout=10).topics
            except KafkaException as exc:
                raise broker_error(exc, "listing topics") from exc
        missing = sorted(topics - set(existing))
        if missing:
            raise ConfigError(
                f"destination topic(s) {', '.join(missing)} do not exist; create them "
                "(oncepipe topics create) or choose another with --to"
            )

    def _overlapped(
        self,
        conn: psycopg.Connection[TupleRow],
        sender: ChunkSender,
        chunks: Sequence[Sequence[tuple[DeadLetter, str]]],
        force: bool,
        progress: Progress | None,
    ) -> list[ReplayOutcome]:
        """Chunks back to back; the ledger works in a thread of its own while this one sends.

        While chunk k is queued and chunk k-1's acknowledgements are collected here, the
        ledger thread claims chunk k+1 in one statement that also records the outcomes
        collected before: the database, the broker and this thread work at the same time.
        """
        outcomes: list[ReplayOutcome] = []
        marks = ledger.Marks()  # acknowledged (or refused), not recorded yet
        flights: list[_Flight] = []  # sent, acknowledgements pending: at most two
        claiming: Future[ledger.Claim] | None = None  # of ``after``
        after: Sequence[tuple[DeadLetter, str]] = ()
        with ThreadPoolExecutor(1, thread_name_prefix="dlq-ledger") as db:
            try:
                for k, part in enumerate(chunks):
                    if claiming is None:  # the first chunk
                        claiming = db.submit(self._claim, conn, part, force, ledger.Marks())
                    claim, claiming = claiming.result(), None
                    if k + 1 < len(chunks):
                        after = chunks[k + 1]
                        claiming = db.submit(self._claim, conn, after, force, marks)
                        marks = ledger.Marks()
                    flights.append(_Flight.launch(sender, part, claim))
                    if flights[-1].others:
                        outcomes += db.submit(flights[-1].skipped, self, conn).result()
                    if len(flights) > 1:
                        outcomes += self._landed(sender, flights.pop(0), marks, progress)
                while flights:
                    outcomes += self._landed(sender, flights.pop(0), marks, progress)
                ledger.record(conn, marks)
            except BaseException:
                # Interrupted: what was acknowledged is recorded, the rest left to a next replay.
                with contextlib.suppress(Exception):
                    if claiming is not None:
                        flights.append(_Flight(after, claiming.result(), []))
                with contextlib.suppress(psycopg.Error):
                    why = "interrupted before the send was acknowledged"
                    for flight in flights:
                        for letter in flight.claimed_letters():
                            marks.failed(flight.claim.claim_id, ledger.key_of(letter), why)
                    ledger.record(conn, marks)
                raise
        return outcomes

    def _claim(
        self,
        conn: psycopg.Connection[TupleRow],
        part: Sequence[tuple[DeadLetter, str]],
        force: bool,
        marks: ledger.Marks,
    ) -> ledger.Claim:
        """Claim ``part`` and record ``marks`` (chunks acknowledged before it), one statement."""
        return ledger.claim(
            conn, part, force=force, stale_after_s=self._stale_claim_s, by=self._by, marks=marks
        )

    def _landed(
        self,
        sender: ChunkSender,
        flight: _Flight,
        marks: ledger.Marks,
        progress: Progress | None,
    ) -> list[ReplayOutcome]:
        """Wait for ``flight``'s acknowledgements; its ledger rows go to ``marks``."""
        self._land(sender, flight)
        marks.extend(flight.marks)
        if progress:
            progress(flight.outcomes)
        return flight.outcomes

    def _land(self, sender: ChunkSender, flight: _Flight) -> _Flight:
        """Wait for ``flight``'s acknowledgements; its outcomes and marks filled in.

        A dead letter is marked sent only when its own delivery report said so, failed
        otherwise (refused, an error report, or none within the delivery timeout).
        """
        sent = flight.sent
        if sent is not None:
            # Not flush: the next chunk is queued behind this one and need not be waited for.
            sender.wait(sent, self._producer_settings.delivery_timeout_ms / 1000 + 30)
        claim_id, counts, outcomes = flight.claim.claim_id, flight.claim.counts, flight.outcomes
        keys = [(letter.dlq_topic, letter.dlq_partition, letter.dlq_offset)
                for _, letter, _ in flight.claimed]  # fmt: skip
        if sent is None or sent.errors:
            self._land_one_by_one(flight, keys)
            return flight
        # Every record acknowledged (the usual case): the chunk's columns in one go.
        partitions, offsets = sent.partitions, sent.offsets
        flight.marks.sent_all(claim_id, keys, partitions, offsets)
        outcomes += [
            ReplayOutcome(letter.ref, "sent", to, letter.event_id, counts[key], p, o)
            for (_, letter, to), key, p, o in zip(
                flight.claimed, keys, partitions, offsets, strict=True
            )
        ]
        return flight

    @staticmethod
    def _land_one_by_one(flight: _Flight, keys: list[Key]) -> None:
        claim_id, counts, marks = flight.claim.claim_id, flight.claim.counts, flight.marks
        sent = flight.sent
        for j, ((_, letter, to), key) in enumerate(zip(flight.claimed, keys, strict=True)):
            count = counts[key]
            error = sent.errors.get(j) if sent is not None else None
            if sent is not None and error is None:
                partition, offset = sent.partitions[j], sent.offsets[j]
                marks.sent(claim_id, key, partition, offset)
                flight.outcomes.append(
                    ReplayOutcome(letter.ref, "sent", to, letter.event_id, count, partition, offset)
                )
                continue
            reason = str(error) if error is not None else "not sent"
            marks.failed(claim_id, key, reason)
            flight.outcomes.append(
                ReplayOutcome(letter.ref, "failed", to, letter.event_id, count, reason=reason)
            )
            log.warning("replay failed", ref=letter.ref, destination=to, error=reason)

    def _replay_chunk(
        self,
        conn: psycopg.Connection[TupleRow],
        sender: ChunkSender,
        chunk: Sequence[tuple[DeadLetter, str]],
        force: bool,
    ) -> list[ReplayOutcome]:
        claim = ledger.claim(
            conn, chunk, force=force, stale_after_s=self._stale_claim_s, by=self._by
        )
        flight: _Flight | None = None
        try:
            flight = self._land(sender, _Flight.launch(sender, chunk, claim))
        except BaseException:
            # Interrupted before the acks came back: let the next replay take these over.
            claimed = [letter for letter, _ in chunk if ledger.key_of(letter) in claim.counts]
            ledger.record_failed(
                conn,
                claim.claim_id,
                [(ledger.key_of(letter), "interrupted before the send was acknowledged")
                 for letter in claimed],
            )  # fmt: skip
            raise
        ledger.record(conn, flight.marks)
        return flight.outcomes + (flight.skipped(self, conn) if flight.others else [])

    @staticmethod
    def _skipped(
        letter: DeadLetter, to: str, entry: ledger.LedgerEntry | None, *, would: bool = False
    ) -> ReplayOutcome:
        if entry is None:
            reason = "claimed by another replay"
        elif entry.outcome == "sent":
            reason = (
                f"already replayed to {entry.destination_topic} by {entry.replayed_by} at "
                f"{entry.replayed_at:%Y-%m-%d %H:%M:%S}; --force replays it again"
            )
        else:
            reason = f"being replayed by {entry.replayed_by} since {entry.claimed_at:%H:%M:%S}"
        return ReplayOutcome(
            letter.ref,
            "would-skip" if would else "skipped",
            to,
            letter.event_id,
            entry.replay_count if entry else None,
            entry.replay_partition if entry else None,
            entry.replay_offset if entry else None,
            reason,
        )


@dataclass
class _Flight:
    """One chunk sent by the replay: its claim, answers and outcomes."""

    chunk: Sequence[tuple[DeadLetter, str]]
    claim: ledger.Claim
    claimed: list[tuple[int, DeadLetter, str]]
    sent: Sent | None = None
    """The answers of ``claimed``, by position (None: nothing was sent)."""
    marks: ledger.Marks = field(default_factory=ledger.Marks)
    outcomes: list[ReplayOutcome] = field(default_factory=list)

    @classmethod
    def launch(
        cls,
        sender: ChunkSender,
        chunk: Sequence[tuple[DeadLetter, str]],
        claim: ledger.Claim,
    ) -> _Flight:
        """Send the claimed dead letters of ``chunk`` without waiting for their acks."""
        counts = claim.counts
        claimed: list[tuple[int, DeadLetter, str]] = []
        records: list[OutRecord] = []
        topics: set[str] = set()
        for i, (letter, to) in enumerate(chunk):
            count = counts.get((letter.dlq_topic, letter.dlq_partition, letter.dlq_offset))
            if count is not None:
                claimed.append((i, letter, to))
                records.append((to, letter.key, letter.value, replay_headers(letter, count)))
                topics.add(to)
        flight = cls(chunk, claim, claimed)
        if records:
            to_topics = ",".join(sorted(topics))
            with tracing.links_span("replay", to_topics, [r[3] for r in records]):
                flight.sent = sender.send(records)
        return flight

    @property
    def others(self) -> bool:
        """True when another replay holds or sent some dead letters of the chunk."""
        return len(self.claimed) < len(self.chunk)

    def claimed_letters(self) -> list[DeadLetter]:
        """The dead letters of the chunk this replay claimed."""
        return [letter for letter, _ in self.chunk if ledger.key_of(letter) in self.claim.counts]

    def skipped(
        self, replayer: Replayer, conn: psycopg.Connection[TupleRow]
    ) -> list[ReplayOutcome]:
        """The outcomes of the dead letters another replay holds or sent."""
        others = [(letter, to) for letter, to in self.chunk
                  if ledger.key_of(letter) not in self.claim.counts]  # fmt: skip
        if not others:
            return []
        known = ledger.entries(conn, [ledger.key_of(letter) for letter, _ in others])
        return [replayer._skipped(letter, to, known.get(ledger.key_of(letter)))
                for letter, to in others]  # fmt: skip


def _in_order(letters: Sequence[DeadLetter], outcomes: list[ReplayOutcome]) -> list[ReplayOutcome]:
    position = {letter.ref: i for i, letter in enumerate(letters)}
    return sorted(outcomes, key=lambda o: position.get(o.ref, len(position)))
