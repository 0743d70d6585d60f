"""Crash-loop detection: a durable attempt record before the handler runs.

A record that kills the process (segfault, OOM kill, ``os._exit``) leaves nothing behind
when the batch dies, so without a record the group would retry it forever. Before each batch
the worker commits, per partition, one more attempt at the partition's start offset
(``oncepipe.consumer_attempts``) in a small transaction of its own with
``synchronous_commit = off``: the row reaches the server before the handler runs, so it
survives the death of the process. The WAL flush is not waited for: a crash of PostgreSQL
itself may lose the last few hundred milliseconds of attempt records, which only makes a
crash loop take a restart or two longer to catch (a count lost is never a count invented).

The reply is not waited for either, once the worker knows its partitions' rows: the worker
is the only writer of the rows of the partitions it owns (``oncepipe.consumer_owners``), so
after it read a row once it computes the next one itself, sends the transaction (BEGIN ...
COMMIT in one pipeline) and goes on to the handler. Bytes handed to the kernel are delivered
even if the process dies at once (``kill -9``, ``os._exit``): the server reads the whole
pipeline and commits it, as it would if the worker had waited. The reply is read before the
batch commits (``confirm``): a failed attempt fails its batch. The rows are read (and the
attempt waited for) when the worker does not know them: the first batch of a partition after
an assignment or a reconnect, after a failure it survived, and while a range is narrowed.

- ``limit`` attempts of one suspect range without a commit: the next attempt narrows the
  range (start .. the furthest end attempted) to ONE record per batch. Attempts count by
  overlapping ranges, not by exact start offset: when a restarted worker's batches are shaped
  differently and commit the records before the killer, the next attempt starts inside the
  range of the attempts that died and adds to their count (``next_range``), so a killer deep
  in a partition costs the same as one at its start;
- a single record of a narrowed range that reaches ``limit`` attempts again is the killer:
  it is dead-lettered with stage ``crash`` without running the handler, and its neighbours
  are applied (one per batch) exactly once.

So a killer costs ``2 * limit`` crashes. An innocent record would need ``limit`` kills in a
row while its batch is in flight and then ``limit`` more while it is the only record in
flight, with no commit in between: random kills from outside cannot line up like that unless
they come faster than one batch of one record commits. Failures the worker survives (a
transient error, a fence, a held record) are not crashes: the worker remembers them and its
next attempt at the same offset does not count. A worker counts only on partitions it took
last (``oncepipe.consumer_owners``), so a zombie counts nothing.

Public names: ``AttemptRecordError``, ``Attempts``, ``CrashLoopError``, ``Narrowed``,
``Range``, ``crash_rejection``, ``next_range``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import generators, pq

from consumers.decoding import Rejected, read_headers
from consumers.events import Coordinates
from oncepipe.db import wrap_as_unavailable
from oncepipe.errors import DatabaseUnavailableError, PoisonError, RetriableError
from oncepipe.logging import get_logger

__all__ = [
    "AttemptRecordError",
    "Attempts",
    "CrashLoopError",
    "Narrowed",
    "Range",
    "crash_rejection",
    "next_range",
]


class CrashLoopError(PoisonError):
    """The worker died every time it applied this record alone."""


class AttemptRecordError(DatabaseUnavailableError):
    """The attempt record sent before the batch failed: the batch must not commit."""


_BEGIN = """
INSERT INTO oncepipe.consumer_attempts AS a
    (consumer_group, topic, partition, start_offset, end_offset, last_end, attempts, narrow_until)
SELECT %(group)s::text, c.topic, c.partition, c.start_offset, c.end_offset, c.last_end,
       c.attempts, c.narrow_until
FROM unnest(%(topics)s::text[], %(partitions)s::int[], %(starts)s::bigint[], %(ends)s::bigint[],
            %(lasts)s::bigint[], %(counts)s::int[], %(untils)s::bigint[])
    AS c(topic, partition, start_offset, end_offset, last_end, attempts, narrow_until)
WHERE NOT EXISTS (
    SELECT 1 FROM oncepipe.consumer_owners AS w
    WHERE w.consumer_group = %(group)s::text AND w.topic = c.topic
      AND w.partition = c.partition AND w.owner <> %(owner)s::uuid
)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET
    start_offset = excluded.start_offset, end_offset = excluded.end_offset,
    last_end = excluded.last_end, attempts = excluded.attempts,
    narrow_until = excluded.narrow_until, updated_at = now()
RETURNING topic, partition, attempts
"""


# The same statement sent by libpq itself (``Attempts._send``): numbered, text parameters.
_BEGIN_NAMES = tuple(dict.fromkeys(re.findall(r"%\((\w+)\)s", _BEGIN)))
_BEGIN_SENT = re.sub(
    r"%\((\w+)\)s", lambda m: f"${_BEGIN_NAMES.index(m.group(1)) + 1}", _BEGIN
).encode()

_PREPARED = b"oncepipe_attempt"


_STATE = """
SELECT topic, partition, start_offset, end_offset, coalesce(last_end, end_offset), attempts,
       narrow_until
FROM oncepipe.consumer_attempts
WHERE consumer_group = %s AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::int[]))
FOR UPDATE
"""


@dataclass(frozen=True)
class Range:
    """A partition's attempt row: the suspect range and its attempts without a commit."""

    start: int
    end: int
    """The furthest end attempted since the range started (exclusive)."""
    last_end: int
    """The end of the latest attempt: a next start at or past it means that one committed."""
    attempts: int
    narrow_until: int | None = None


def next_range(row: Range | None, start: int, end: int, count: int, limit: int) -> Range:
    """The attempt row after one more attempt at ``start .. end`` (``count`` 0 or 1).

    - same start: one more attempt at the range; past ``limit`` the range is narrowed
      (``narrow_until`` = the furthest end) and counting starts again at 1, record by record;
    - a start inside a narrowed range: the range stays narrowed, this record's count starts;
    - a start inside the range attempted before (not narrowed): records before the killer were
      committed by a differently shaped batch; the attempts that did not commit still overlap
      this one and keep counting (the latest one is left out if it committed);
    - anything else: a new range.
    """
    if row is not None and row.start == start:
        attempts = row.attempts + count
        if row.narrow_until is None and attempts > limit:
            return Range(start, max(row.end, end), end, 1, max(row.end, end))
        return Range(start, max(row.end, end), end, attempts, row.narrow_until)
    if row is not None and row.narrow_until is not None and row.narrow_until > start:
        return Range(start, end, end, count, row.narrow_until)
    if row is not None and row.narrow_until is None and row.start < start < row.end:
        carried = max(row.attempts - (1 if start >= row.last_end else 0), 0)
        if carried + count > limit:
            return Range(start, max(row.end, end), end, 1, max(row.end, end))
        return Range(start, max(row.end, end), end, carried + count)
    return Range(start, end, end, count)


_TAKE_BACK = """
UPDATE oncepipe.consumer_attempts AS a SET attempts = greatest(a.attempts - 1, 0)
FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS c(topic, partition, start_offset)
WHERE a.consumer_group = %s AND (a.topic, a.partition, a.start_offset)
    = (c.topic, c.partition, c.start_offset)
"""


@dataclass
class Narrowed:
    """A batch after crash-loop detection: what to apply, what to dead-letter, what to re-read."""

    records: list[Any] = field(default_factory=list)
    killers: list[Rejected] = field(default_factory=list)
    narrowed: set[Coordinates] = field(default_factory=set)
    """Partitions of a batch cut to one record: the worker seeks them back after it."""


class Attempts:
    """Records each batch attempt on its own connection, and narrows crash-looping ranges."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        group: str,
        owner: uuid.UUID,
        *,
        limit: int,
    ) -> None:
        self._connect = connect
        self._group = group
        self._owner = owner
        self._limit = limit
        self._conn: psycopg.Connection[Any] | None = None
        self._survived: set[tuple[str, int, int]] = set()
        # The attempt rows as this worker last wrote (or read) them; a partition missing is
        # one whose row must be read first. None: the partition has no row.
        self._rows: dict[Coordinates, Range | None] = {}
        # The partitions of an attempt sent without waiting for its reply yet, and how many
        # replies it has (a statement prepared with it has one more).
        self._sent: list[Coordinates] | None = None
        self._replies = 0
        self._prepared = False

    def _open(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or not self._open():
            self._rows.clear()
            self._sent = None
            self._prepared = False
            self._conn = self._connect()
            # Transactions are spelled out (BEGIN ... COMMIT), so that a pipeline carries them.
            self._conn.autocommit = True
        return self._conn

    def begin(
        self, records: Sequence[Any], positions: Mapping[Coordinates, int | None]
    ) -> Narrowed:
        """Count this attempt (committed) and cut a crash-looping batch to one record.

        ``records`` are Kafka records in partition order; ``positions`` the stored offsets.
        While any partition of the batch is narrowed, the batch is that partition's first
        record alone and only that attempt counts: a crash is charged to the record in flight
        and to nothing else. When the worker knows the rows of the batch's partitions and none
        is narrowed, the attempt is sent without waiting for its reply: ``confirm`` reads it.
        """
        firsts: dict[Coordinates, Any] = {}
        ends: dict[Coordinates, int] = {}
        for record in records:
            where = (record.topic(), record.partition())
            firsts.setdefault(where, record)
            ends[where] = record.offset() + 1
        if not firsts:
            return Narrowed(records=list(records))
        starts = {w: _start(positions.get(w), firsts[w].offset()) for w in firsts}
        counts = {w: 0 if (*w, starts[w]) in self._survived else 1 for w in firsts}
        # Only the partitions of this batch use their marks up (a held one waits paused).
        self._survived = {m for m in self._survived if (m[0], m[1]) not in firsts}
        with wrap_as_unavailable(
            lambda exc: f"cannot record a batch attempt ({exc.sqlstate or 'connection'})",
            cleanup=self.close,
        ):
            self._settle()
            if self._open() and all(w in self._rows for w in firsts):
                after = {
                    w: next_range(self._rows[w], starts[w], ends[w], counts[w], self._limit)
                    for w in firsts
                }
                if all(after[w].narrow_until is None for w in firsts):
                    self._send(after)
                    return Narrowed(records=list(records))
            conn = self._connection()
            # Two round trips (pipeline mode): BEGIN, SET and SELECT; then INSERT and COMMIT.
            with _rolled_back_on_error(conn), conn.pipeline():
                conn.execute("BEGIN")
                conn.execute("SET LOCAL synchronous_commit = off")
                known = {
                    (t, int(p)): Range(int(s), int(e), int(last), int(n), until)
                    for t, p, s, e, last, n, until in conn.execute(
                        _STATE, (self._group, [w[0] for w in firsts], [w[1] for w in firsts])
                    ).fetchall()
                }
                after = {
                    w: next_range(known.get(w), starts[w], ends[w], counts[w], self._limit)
                    for w in firsts
                }
                # The attempt is one record alone while its partition's range is narrowed.
                single = next((w for w in firsts if after[w].narrow_until is not None), None)
                counted = list(firsts) if single is None else [single]
                inserted = conn.execute(
                    _BEGIN, _parameters(self._group, self._owner, after, counted)
                )
                conn.execute("COMMIT")
            rows = inserted.fetchall()
        written = {(t, int(p)) for t, p, _ in rows}
        for w in firsts:
            if w in written:
                self._rows[w] = after[w]
            else:
                # Not counted (narrowed elsewhere in the batch) or refused (not the owner).
                self._rows.pop(w, None)
        if single is None:
            return Narrowed(records=list(records))
        attempts = next((int(n) for t, p, n in rows if (t, int(p)) == single), 0)
        record = firsts[single]
        if attempts > self._limit:
            return Narrowed(killers=[_killer(record, self._limit)], narrowed=set(firsts))
        return Narrowed(records=[record], narrowed=set(firsts))

    def _send(self, after: Mapping[Coordinates, Range]) -> None:
        """BEGIN, SET, the attempt rows and COMMIT in one pipeline, handed to the kernel.

        Nothing is waited for: once the bytes are in the socket's buffer, the server gets them
        even if this process dies now, and commits them (the pipeline's Sync ends it).
        """
        conn = self._connection()  # open: the caller checked
        counted = list(after)
        values = _parameters(self._group, self._owner, after, counted)
        pg = conn.pgconn
        params = [_text(values[name]) for name in _BEGIN_NAMES]
        # Prepared once per session (planning it is most of its server time), unless the
        # session is a transaction pooler's (prepare_threshold None: prepared statements are
        # not kept there).
        prepare = conn.prepare_threshold is not None
        pg.enter_pipeline_mode()
        try:
            pg.send_query_params(b"BEGIN", None)
            pg.send_query_params(b"SET LOCAL synchronous_commit = off", None)
            if prepare and not self._prepared:
                pg.send_prepare(_PREPARED, _BEGIN_SENT)
            if prepare:
                pg.send_query_prepared(_PREPARED, params)
            else:
                pg.send_query_params(_BEGIN_SENT, params)
            pg.send_query_params(b"COMMIT", None)
            pg.pipeline_sync()
            conn.wait(generators.send(pg))
        except BaseException:
            self.close()
            raise
        # BEGIN, SET, (PREPARE,) INSERT, COMMIT, then the pipeline's Sync.
        self._replies = 6 if prepare and not self._prepared else 5
        self._prepared = self._prepared or prepare
        self._sent = counted

    def confirm(self) -> None:
        """Read the reply of the attempt sent without waiting, before the batch commits.

        Raises ``AttemptRecordError`` when it failed (the batch must not commit: a crash in it
        would not be counted). Nothing to read is fine: the attempt was waited for, or none.
        """
        try:
            self._settle()
        except psycopg.Error as exc:
            raise AttemptRecordError(
                f"the batch's attempt record failed ({exc.sqlstate or 'connection'}): "
                f"{type(exc).__name__}"
            ) from exc

    def _settle(self) -> None:
        """Read the pending attempt's replies; a failure closes the connection and raises."""
        sent, self._sent = self._sent, None
        if sent is None or self._conn is None:
            return
        conn, pg = self._conn, self._conn.pgconn
        failure: psycopg.Error | None = None
        written: set[Coordinates] = set()
        try:
            for _ in range(self._replies):
                for result in conn.wait(generators.fetch_many(pg)):
                    if result.status == pq.ExecStatus.FATAL_ERROR and failure is None:
                        failure = psycopg.errors.error_from_result(
                            result, encoding=conn.info.encoding
                        )
                    elif result.status == pq.ExecStatus.TUPLES_OK:
                        written = {
                            (_value(result, n, 0), int(_value(result, n, 1)))
                            for n in range(result.ntuples)
                        }
            pg.exit_pipeline_mode()
        except BaseException:
            self.close()
            raise
        if failure is not None:
            # An aborted explicit transaction stays open after the Sync (and a failed PREPARE
            # leaves no statement): a new session is simpler.
            self.close()
            raise failure
        for w in sent:
            if w not in written:
                self._rows.pop(w, None)  # refused (not the owner): read it next time

    def forget(self, partitions: Sequence[Coordinates]) -> None:
        """Read these partitions' rows again before counting on them (a new assignment)."""
        for where in partitions:
            self._rows.pop(where, None)

    def survived(self, starts: Mapping[Coordinates, int | None]) -> None:
        """Attempts at these start offsets failed without killing the worker: not crashes.

        Taken back in the attempt rows at once (so the next owner of the partition does not
        count them either); while PostgreSQL cannot be written, remembered in memory instead,
        and the next attempt at the same offset counts 0.
        """
        known = [(t, p, s) for (t, p), s in starts.items() if s is not None]
        self.forget(list(starts))
        if not known:
            return
        try:
            self._settle()
            conn = self._connection()
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = off")
                conn.execute(
                    _TAKE_BACK,
                    ([t for t, _, _ in known], [p for _, p, _ in known],
                     [s for _, _, s in known], self._group),
                )  # fmt: skip
        except (psycopg.Error, RetriableError) as exc:
            # A server that is down fails at connect (RetriableError), one that drops the
            # session fails at a statement (psycopg.Error): both are waited out elsewhere.
            sqlstate = exc.sqlstate if isinstance(exc, psycopg.Error) else None
            get_logger("consumer", consumer_group=self._group).warning(
                "attempt take-back failed, kept in memory",
                reason=f"{type(exc).__name__} ({sqlstate or 'connection'})",
            )
            self.close()
            self._survived.update(known)

    def close(self) -> None:
        """Close the connection (a new one is opened when next needed)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
        self._rows.clear()
        self._sent = None
        self._prepared = False


def _parameters(
    group: str, owner: uuid.UUID, after: Mapping[Coordinates, Range], counted: Sequence[Coordinates]
) -> dict[str, Any]:
    """The attempt rows of ``counted`` partitions as ``_BEGIN``'s parameters."""
    return {
        "group": group,
        "owner": owner,
        "topics": [w[0] for w in counted],
        "partitions": [w[1] for w in counted],
        "starts": [after[w].start for w in counted],
        "ends": [after[w].end for w in counted],
        "lasts": [after[w].last_end for w in counted],
        "counts": [after[w].attempts for w in counted],
        "untils": [after[w].narrow_until for w in counted],
    }


def _text(value: Any) -> bytes:
    """A parameter in PostgreSQL's text format: a scalar, or a one-dimensional array."""
    if isinstance(value, list):
        return ("{" + ",".join(_element(v) for v in value) + "}").encode()
    return str(value).encode()


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _value(result: Any, row: int, column: int) -> str:
    raw = result.get_value(row, column)
    return bytes(raw).decode() if raw is not None else ""


@contextmanager
def _rolled_back_on_error(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """ROLLBACK a transaction begun by statement (autocommit session) when its block fails."""
    try:
        yield
    except BaseException:
        if not conn.closed and not conn.broken:
            with suppress(psycopg.Error):
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
        raise


def _start(position: int | None, first: int) -> int:
    return first if position is None else position


def _killer(record: Any, crashes: int) -> Rejected:
    """The record the worker died on every time it ran it alone, as a ``crash`` rejection."""
    return crash_rejection(
        record,
        CrashLoopError(
            f"the worker died {crashes} times in a row while this record was the only one in "
            "flight (segfault, OOM kill or exit in the handler); dead-lettered without running it"
        ),
    )


def crash_rejection(record: Any, error: CrashLoopError) -> Rejected:
    """``record`` as a ``crash`` rejection: dead-lettered with ``error``, its handler not run."""
    headers, headers_error = read_headers(record)
    _, timestamp = record.timestamp()
    event_id = None
    for name, raw in headers:
        if name == "event_id" and raw:
            event_id = (raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))[:64]
            break
    return Rejected(
        record.topic(), record.partition(), record.offset(), record.key(), record.value(),
        headers, timestamp if timestamp >= 0 else None, "crash", error, event_id, headers_error,
    )  # fmt: skip
