"""Hooks: what a worker tells an observer, and the named points where fault tests stop it.

The consumer runtime and the relay take one ``Hooks`` object. Product code passes
``NO_HOOKS`` (the default everywhere): every call returns at once. Benchmarks pass an object
that times or counts batches; fault tests set environment variables that only the command
line reads (``hooks_from_environment``):

- ``ONCEPIPE_CRASH_POINTS=relay.after_ack``: the worker SIGKILLs itself at that point (right
  after the broker acknowledged a batch, before the relay marks the rows published), so a
  test can prove what a crash at exactly that moment does;
- ``ONCEPIPE_CONSUMER_STALL_POINTS=consumer.before_transaction``: the worker SIGSTOPs itself
  the first time it gets there. A stalled member stops heartbeating; the broker evicts it after
  ``session.timeout.ms`` and a new owner takes its partitions. Resumed with SIGCONT, it goes on
  exactly where it stopped, as a zombie does, so a test can prove the offset fence refuses it;
- ``ONCEPIPE_CONSUMER_HANG_POINTS=consumer.before_transaction``: the worker's loop thread blocks
  there for good while the rest of the process (the metrics and health thread) goes on, so a
  test can see ``/livez`` fail for a loop that makes no progress. Only SIGKILL ends it.

Callbacks run on the worker's thread, in its loop: they must be quick and must not raise.
Their arguments are plain values, so this module depends on no worker package.

Public names: ``Hooks``, ``NoHooks``, ``NO_HOOKS``, ``FaultPoints``, ``FanOut``,
``hooks_from_environment``, ``BatchStarted``, ``BatchCommitted``, ``BatchFailed``,
``RecordDeadLettered``, ``RowsPublished``, ``PartitionFreshness``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from oncepipe.settings import split_names

__all__ = [
    "NO_HOOKS",
    "BatchCommitted",
    "BatchFailed",
    "BatchStarted",
    "FanOut",
    "FaultPoints",
    "Hooks",
    "NoHooks",
    "PartitionFreshness",
    "RecordDeadLettered",
    "RowsPublished",
    "hooks_from_environment",
]

CRASH_POINTS_ENV = "ONCEPIPE_CRASH_POINTS"
STALL_POINTS_ENV = "ONCEPIPE_CONSUMER_STALL_POINTS"
HANG_POINTS_ENV = "ONCEPIPE_CONSUMER_HANG_POINTS"


@dataclass(frozen=True)
class BatchStarted:
    """A consumer batch is about to be applied (its transaction's first statement is next)."""

    group: str
    events: int
    """Decoded events handed to the batch."""


@dataclass(frozen=True)
class PartitionFreshness:
    """The last event a batch applied on one partition, and when it was produced."""

    topic: str
    partition: int
    produced_at: float
    """Unix seconds: the record's ``produced_at`` header, else its Kafka timestamp."""


@dataclass(frozen=True)
class BatchCommitted:
    """A consumer batch committed: effects, dead letters and offsets are durable."""

    group: str
    events: int
    """Decoded events the offsets moved past, duplicates and dead-lettered ones included (a
    record that did not decode counts in ``dead_letters`` only)."""
    applied: int
    duplicates: int
    emitted: int
    dead_letters: int
    held_partitions: int
    event_ids: tuple[uuid.UUID, ...]
    """The ids of those ``events``, in partition order."""
    freshness: tuple[PartitionFreshness, ...] = field(default=(), compare=False)
    """Per partition with an applied event: the newest one's production time."""


@dataclass(frozen=True)
class BatchFailed:
    """A consumer batch rolled back and will be read again from the stored offsets."""

    group: str
    reason: str
    """``fenced`` (another worker owns a partition now) or ``transient`` (database, broker)."""
    events: int


@dataclass(frozen=True)
class RecordDeadLettered:
    """A record's dead letter committed to the outbox with its batch."""

    group: str
    topic: str
    partition: int
    offset: int
    attempts: int
    error_class: str
    stage: str = ""
    """Where it failed: ``decode``, ``validate`` or ``handle``."""


@dataclass(frozen=True)
class RowsPublished:
    """One relay pass marked ``rows`` outbox rows published; ``held`` wait for a retry."""

    rows: int
    held: int
    seconds: float = field(default=0.0, compare=False)
    """From sending the pass's records to their last acknowledgement."""


class Hooks(Protocol):
    """What the consumer runtime and the relay call; ``NoHooks`` does nothing."""

    def point(self, name: str) -> None:
        """A named point of the worker's loop was reached (see the README for their names)."""

    def batch_started(self, batch: BatchStarted) -> None:
        """A consumer batch is about to be applied."""

    def batch_committed(self, batch: BatchCommitted) -> None:
        """A consumer batch committed (called after ``record_dead_lettered`` for its records)."""

    def record_dead_lettered(self, record: RecordDeadLettered) -> None:
        """A dead letter committed with its batch."""

    def rows_published(self, rows: RowsPublished) -> None:
        """A relay pass marked rows published (after the broker acknowledged them)."""

    def batch_failed(self, batch: BatchFailed) -> None:
        """A consumer batch rolled back (fenced or a transient failure) and will be re-read."""

    def heartbeat(self) -> None:
        """The worker's loop went round, or is waiting by design (a backoff, an idle poll)."""


class NoHooks:
    """Hooks that do nothing: the default of every worker. Subclass it to observe a few."""

    def point(self, name: str) -> None:
        """Nothing."""

    def batch_started(self, batch: BatchStarted) -> None:
        """Nothing."""

    def batch_committed(self, batch: BatchCommitted) -> None:
        """Nothing."""

    def record_dead_lettered(self, record: RecordDeadLettered) -> None:
        """Nothing."""

    def rows_published(self, rows: RowsPublished) -> None:
        """Nothing."""

    def batch_failed(self, batch: BatchFailed) -> None:
        """Nothing."""

    def heartbeat(self) -> None:
        """Nothing."""


NO_HOOKS: Hooks = NoHooks()


class FanOut:
    """Several hooks heard in turn: fault points and metrics in one worker."""

    def __init__(self, *hooks: Hooks) -> None:
        self.hooks = tuple(hooks)

    def point(self, name: str) -> None:
        """Each hook's ``point``."""
        for hook in self.hooks:
            hook.point(name)

    def batch_started(self, batch: BatchStarted) -> None:
        """Each hook's ``batch_started``."""
        for hook in self.hooks:
            hook.batch_started(batch)

    def batch_committed(self, batch: BatchCommitted) -> None:
        """Each hook's ``batch_committed``."""
        for hook in self.hooks:
            hook.batch_committed(batch)

    def record_dead_lettered(self, record: RecordDeadLettered) -> None:
        """Each hook's ``record_dead_lettered``."""
        for hook in self.hooks:
            hook.record_dead_lettered(record)

    def rows_published(self, rows: RowsPublished) -> None:
        """Each hook's ``rows_published``."""
        for hook in self.hooks:
            hook.rows_published(rows)

    def batch_failed(self, batch: BatchFailed) -> None:
        """Each hook's ``batch_failed``."""
        for hook in self.hooks:
            hook.batch_failed(batch)

    def heartbeat(self) -> None:
        """Each hook's ``heartbeat``."""
        for hook in self.hooks:
            hook.heartbeat()


class FaultPoints(NoHooks):
    """Crash points (SIGKILL), stall points (SIGSTOP, once) and hang points (thread blocks)."""

    def __init__(
        self, crash: Iterable[str] = (), stall: Iterable[str] = (), hang: Iterable[str] = ()
    ) -> None:
        self.crash = frozenset(crash)
        self.stall = frozenset(stall)
        self.hang = frozenset(hang)
        self._stalled: set[str] = set()

    def point(self, name: str) -> None:
        """SIGKILL at a crash point; SIGSTOP the first time at a stall point."""
        if name in self.crash:
            _say(f"crash point {name} reached, SIGKILL")
            os.kill(os.getpid(), signal.SIGKILL)
        if name in self.stall and name not in self._stalled:
            self._stalled.add(name)
            _say(f"stall point {name} reached, SIGSTOP")
            os.kill(os.getpid(), signal.SIGSTOP)
        if name in self.hang:
            _say(f"hang point {name} reached, this thread blocks")
            threading.Event().wait()


def _say(text: str) -> None:
    # Straight to the fd: a SIGKILL gives buffered loggers no chance to flush.
    os.write(sys.stderr.fileno(), f"oncepipe: {text}\n".encode())


def hooks_from_environment(environ: Mapping[str, str] | None = None) -> Hooks:
    """The fault points the environment names, or ``NO_HOOKS`` when it names none.

    ``ONCEPIPE_CRASH_POINTS``, ``ONCEPIPE_CONSUMER_STALL_POINTS`` and
    ``ONCEPIPE_CONSUMER_HANG_POINTS`` are comma-separated names.
    """
    env = os.environ if environ is None else environ
    crash = split_names(env.get(CRASH_POINTS_ENV, ""))
    stall = split_names(env.get(STALL_POINTS_ENV, ""))
    hang = split_names(env.get(HANG_POINTS_ENV, ""))
    if not crash and not stall and not hang:
        return NO_HOOKS
    return FaultPoints(crash, stall, hang)
