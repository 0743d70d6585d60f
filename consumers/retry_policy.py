"""Verdicts on rejected records: dead-letter now, or hold the partition and try again later.

A held partition stops at the held record: the records before it are applied, the offset
moves to it, and nothing after it in that partition is applied or dead-lettered in this
batch, so offsets never run ahead of effects and the partition's order holds. The worker
tries it again after a backoff.

The grace period of an unknown writer schema belongs to the schema, not to each record: once
one record of a fingerprint waited it out, the next records of that fingerprint (in any
partition) are dead-lettered at once instead of holding their partition for a full grace
period each. The worker remembers when it first saw each unknown fingerprint (a restart
forgets, so it waits one more grace period at most).

Public names: ``RetryPolicy``, ``Verdicts``, ``default_retry_policy``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consumers.classify import Kind, classify
from consumers.deadletters import DeadLetterCandidate
from consumers.decoding import Rejected
from consumers.events import Coordinates, InboundEvent
from consumers.failures import FailureLog, History
from consumers.settings import ConsumerSettings
from oncepipe.db import connect
from oncepipe.errors import RetriableError
from oncepipe.hooks import NO_HOOKS, Hooks
from oncepipe.settings import Settings

__all__ = ["RetryPolicy", "Verdicts", "default_retry_policy"]

_REMEMBERED = 1024
"""Unknown fingerprints remembered at most (a bound, should a producer send garbage ids)."""


@dataclass
class Verdicts:
    """Records to dead-letter, and per held partition the offset it stops at."""

    to_dead_letter: list[DeadLetterCandidate] = field(default_factory=list)
    held: dict[Coordinates, int] = field(default_factory=dict)
    retry_later: list[tuple[InboundEvent, Exception]] = field(default_factory=list)
    """Events whose handler raised ``RetryLater``: moved to a retry tier, not applied."""

    def blocked_keys(self) -> set[tuple[str, bytes | None]]:
        """(topic, key) of every event given up on or deferred so far (park-key blocks them)."""
        return {(c.rejected.topic, c.rejected.key) for c in self.to_dead_letter} | {
            (e.topic, e.key) for e, _ in self.retry_later
        }

    def beyond_hold(self, where: Coordinates, offset: int) -> bool:
        """True when a hold keeps the record at ``offset`` out of this batch."""
        stop = self.held.get(where)
        return stop is not None and offset > stop

    def passes(self, where: Coordinates, offset: int) -> bool:
        """True when the offset moves past the record at ``offset`` in this batch."""
        stop = self.held.get(where)
        return stop is None or offset < stop

    def merge(self, other: Verdicts) -> None:
        """Add another decision's verdicts (holds keep their lowest offset)."""
        self.to_dead_letter += other.to_dead_letter
        self.retry_later += other.retry_later
        for where, offset in other.held.items():
            self.held[where] = min(offset, self.held.get(where, offset))
        self.to_dead_letter = [
            c
            for c in self.to_dead_letter
            if not self.beyond_hold(c.rejected.coordinates, c.rejected.offset)
        ]


class RetryPolicy:
    """Turns failures into verdicts with the failure log, ``max_attempts`` and the grace period."""

    def __init__(
        self,
        failures: FailureLog,
        *,
        max_attempts: int,
        unknown_schema_grace_s: float,
        hooks: Hooks = NO_HOOKS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._failures = failures
        self._hooks = hooks
        self._max_attempts = max_attempts
        self._grace_s = unknown_schema_grace_s
        self._clock = clock
        # Unknown writer fingerprints and the earliest failure seen for any record of each.
        self._unknown_since: dict[str, datetime] = {}

    def decide(self, rejected: Sequence[Rejected]) -> Verdicts:
        """Verdicts for ``rejected`` (partition order); raises for transient or fatal errors.

        1. Records beyond a hold already given in this call are skipped (not counted).
        2. Poison: dead-lettered, with what the log counted before plus this attempt.
        3. Unexpected: counted (committed); dead-lettered at ``max_attempts``, else held.
        4. Pending schema: counted; dead-lettered once failing longer than the grace period.
        """
        verdicts = Verdicts()
        poison: list[Rejected] = []
        for record in rejected:
            if verdicts.beyond_hold(record.coordinates, record.offset):
                continue
            kind = classify(record.error)
            if kind is Kind.TRANSIENT:
                raise RetriableError(
                    f"{type(record.error).__name__} at {record.topic}[{record.partition}]"
                    f"@{record.offset} is transient; retrying the batch"
                ) from record.error
            if kind is Kind.FATAL:
                raise record.error
            if kind is Kind.POISON:
                poison.append(record)
                continue
            history = self._failures.record(record)
            self._hooks.point("consumer.after_failure_counted")
            # The dead letter reports the record's own history; the grace is the schema's.
            waited = history
            if kind is Kind.PENDING:
                waited = self._schema_history(record.error, history)
            if self._exhausted(kind, waited):
                verdicts.to_dead_letter.append(DeadLetterCandidate(record, *_fields(history)))
            else:
                verdicts.held[record.coordinates] = record.offset
        self._dead_letter_poison(verdicts, poison)
        verdicts.to_dead_letter.sort(
            key=lambda c: (c.rejected.topic, c.rejected.partition, c.rejected.offset)
        )
        return verdicts

    def _dead_letter_poison(self, verdicts: Verdicts, poison: Sequence[Rejected]) -> None:
        """Dead-letter ``poison``, with the failures counted before plus this one."""
        if not poison:
            return
        now = self._clock()
        known = self._failures.history(poison)
        for record in poison:
            before = known.get((record.topic, record.partition, record.offset))
            if before is None:
                verdicts.to_dead_letter.append(DeadLetterCandidate(record, 1, now, now))
            else:
                verdicts.to_dead_letter.append(
                    DeadLetterCandidate(record, before.attempts + 1, before.first_failure, now)
                )

    def _schema_history(self, error: BaseException, history: History) -> History:
        """The record's history, starting when its writer schema was first found unknown."""
        fingerprint = getattr(error, "fingerprint", None)
        if not isinstance(fingerprint, str):
            return history
        since = min(self._unknown_since.get(fingerprint, history.first_failure),
                    history.first_failure)  # fmt: skip
        if fingerprint not in self._unknown_since and len(self._unknown_since) >= _REMEMBERED:
            del self._unknown_since[next(iter(self._unknown_since))]  # the oldest entry
        self._unknown_since[fingerprint] = since
        return History(history.attempts, since, history.last_failure)

    def _exhausted(self, kind: Kind, history: History) -> bool:
        if kind is Kind.PENDING:
            failing_for = (history.last_failure - history.first_failure).total_seconds()
            return failing_for >= self._grace_s
        return history.attempts >= self._max_attempts


def _fields(history: History) -> tuple[int, datetime, datetime]:
    return history.attempts, history.first_failure, history.last_failure


def default_retry_policy(settings: Settings, group: str, hooks: Hooks = NO_HOOKS) -> RetryPolicy:
    """A retry policy with the default ``max_attempts`` and grace, for callers without one."""
    failures = FailureLog(lambda: connect(settings, f"oncepipe-consumer-failures:{group}"), group)
    return RetryPolicy(
        failures,
        hooks=hooks,
        max_attempts=ConsumerSettings.model_fields["max_attempts"].default,
        unknown_schema_grace_s=ConsumerSettings.model_fields["unknown_schema_grace_s"].default,
    )
