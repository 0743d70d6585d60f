"""The crash-loop attempt record off the batch path: sent, not waited for, confirmed at COMMIT.

Once the worker knows its partitions' attempt rows it sends the next attempt (BEGIN ... COMMIT
in one pipeline) and runs the handler without waiting for the reply; the batch reads it before
it commits. What must hold: the attempt reaches the server and counts even when the process
dies right after sending it; a failed attempt fails its batch; a new assignment reads the rows
again (another worker may have counted on them).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import uuid
from typing import Any

import psycopg
import pytest

from consumers.attempts import AttemptRecordError, Attempts
from consumers.batch import apply_batch
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from oncepipe.settings import Settings
from schemas import Codec
from tests.fixtures.pgtrace import start_trace
from tests.fixtures.workers import make_clicks, wait_until

pytestmark = pytest.mark.integration

TOPIC = "t"


class _Record:
    """The three accessors of a Kafka record the attempt record reads."""

    def __init__(self, offset: int, partition: int = 0) -> None:
        self._offset = offset
        self._partition = partition

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def _row(url: str, group: str) -> tuple[Any, ...] | None:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT start_offset, end_offset, attempts FROM oncepipe.consumer_attempts"
            " WHERE consumer_group = %s AND topic = %s AND partition = 0",
            (group, TOPIC),
        ).fetchone()


def _received(trace: str) -> list[str]:
    """The protocol messages libpq read from the server (``B`` lines of its trace)."""
    return [line for line in trace.splitlines() if line.startswith("B")]


def test_an_attempt_on_a_known_partition_is_sent_without_waiting_and_read_at_confirm(
    settings: Settings,
) -> None:
    url = settings.database_url.get_secret_value()
    group = f"g-sent-{uuid.uuid4().hex[:6]}"
    opened: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        opened.append(psycopg.connect(url))
        return opened[-1]

    attempts = Attempts(connect, group, uuid.uuid4(), limit=3)
    # The first attempt reads the partition's row (none yet) and waits for its COMMIT.
    attempts.begin([_Record(0), _Record(1)], {(TOPIC, 0): None})
    with tempfile.TemporaryFile() as out:
        start_trace(opened[0], out)
        # The batch committed up to 2; the next attempt is computed here and only sent.
        attempts.begin([_Record(2), _Record(3), _Record(4)], {(TOPIC, 0): 2})
        out.seek(0)
        sent = out.read().decode("utf-8", "replace")
        attempts.confirm()
        opened[0].pgconn.untrace()
        out.seek(0)
        confirmed = out.read().decode("utf-8", "replace")
    attempts.close()
    assert "consumer_attempts" in sent, sent
    assert "COMMIT" in sent, sent
    assert _received(sent) == [], sent
    assert any("CommandComplete" in line and "COMMIT" in line for line in _received(confirmed))
    assert len(opened) == 1
    assert _row(url, group) == (2, 5, 1)


_DIES_AFTER_SENDING = textwrap.dedent(
    """
    import os, sys, uuid
    import psycopg
    from consumers.attempts import Attempts

    class R:
        def __init__(self, offset): self._offset = offset
        def topic(self): return "t"
        def partition(self): return 0
        def offset(self): return self._offset

    url, group = sys.argv[1], sys.argv[2]
    attempts = Attempts(lambda: psycopg.connect(url), group, uuid.uuid4(), limit=3)
    attempts.begin([R(0), R(1)], {("t", 0): None})
    attempts.begin([R(0), R(1)], {("t", 0): None})  # sent, not waited for
    os._exit(1)  # as a killer record in the handler would: no close, no flush, no reply read
    """
)


def test_an_attempt_sent_by_a_process_that_dies_at_once_still_counts(settings: Settings) -> None:
    url = settings.database_url.get_secret_value()
    group = f"g-dies-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [sys.executable, "-c", _DIES_AFTER_SENDING, url, group],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    # The server reads the whole pipeline the dead process left in its socket and commits it.
    wait_until(lambda: _row(url, group) == (0, 2, 2), 30, "the second attempt to be counted")


def _events(count: int) -> list[InboundEvent]:
    codec = Codec.load()
    return [
        InboundEvent(
            event=e,
            event_id=e.event_id,
            topic=TOPIC,
            partition=0,
            offset=n,
            key=b"K",
            timestamp_ms=1_000 + n,
            value=codec.encode(e).value,
            headers=(),
        )
        for n, e in enumerate(make_clicks(count, seed=71))
    ]


def test_a_batch_whose_attempt_failed_commits_nothing(settings: Settings) -> None:
    url = settings.database_url.get_secret_value()
    group = f"g-failed-{uuid.uuid4().hex[:6]}"
    opened: list[psycopg.Connection[Any]] = []

    def connect() -> psycopg.Connection[Any]:
        # A lock waited for fails the attempt's statement (the server's lock_timeout).
        opened.append(psycopg.connect(url, options="-c lock_timeout=200"))
        return opened[-1]

    events = _events(4)
    attempts = Attempts(connect, group, uuid.uuid4(), limit=3)
    attempts.begin([_Record(0)], {(TOPIC, 0): None})
    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE oncepipe.consumer_attempts IN ACCESS EXCLUSIVE MODE")
        attempts.begin([_Record(0), _Record(1)], {(TOPIC, 0): None})  # sent only: it will fail
        with psycopg.connect(url) as conn, pytest.raises(AttemptRecordError, match="55P03"):
            apply_batch(
                conn, settings=settings, group=group, events=events,
                positions={(TOPIC, 0): None}, handler=handle_clicks,
                before_commit=attempts.confirm,
            )  # fmt: skip
        blocker.rollback()
    with psycopg.connect(url) as conn:
        offsets = conn.execute(
            "SELECT count(*) FROM oncepipe.consumer_offsets WHERE consumer_group = %s", (group,)
        ).fetchone()
        inbox = conn.execute(
            "SELECT count(*) FROM oncepipe.inbox WHERE consumer_group = %s", (group,)
        ).fetchone()
    assert (offsets, inbox) == ((0,), (0,))
    # The next attempt opens a new session and reads the row again.
    attempts.begin([_Record(0), _Record(1)], {(TOPIC, 0): None})
    attempts.close()
    assert len(opened) == 2


def test_a_new_assignment_reads_the_attempt_row_again(settings: Settings) -> None:
    url = settings.database_url.get_secret_value()
    group = f"g-assign-{uuid.uuid4().hex[:6]}"
    attempts = Attempts(lambda: psycopg.connect(url), group, uuid.uuid4(), limit=3)
    attempts.begin([_Record(0), _Record(1)], {(TOPIC, 0): None})
    # Meanwhile another owner of the partition counted a second attempt that died.
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE oncepipe.consumer_attempts SET attempts = 2 WHERE consumer_group = %s", (group,)
        )
    attempts.forget([(TOPIC, 0)])
    attempts.begin([_Record(0), _Record(1)], {(TOPIC, 0): None})
    attempts.confirm()
    attempts.close()
    assert _row(url, group) == (0, 2, 3)


def _traced_attempts(url: str, group: str, **connect: Any) -> str:
    """Three attempts on one session (the first reads the row), their protocol trace."""
    with tempfile.TemporaryFile() as out:

        def open_traced() -> psycopg.Connection[Any]:
            conn = psycopg.connect(url, **connect)
            start_trace(conn, out)
            return conn

        attempts = Attempts(open_traced, group, uuid.uuid4(), limit=3)
        for start in (0, 2, 4):
            attempts.begin([_Record(start), _Record(start + 1)], {(TOPIC, 0): start})
            attempts.confirm()
        attempts.close()
        out.seek(0)
        return out.read().decode("utf-8", "replace")


def test_the_attempt_is_prepared_once_per_session_except_behind_a_transaction_pooler(
    settings: Settings,
) -> None:
    url = settings.database_url.get_secret_value()
    group = f"g-prep-{uuid.uuid4().hex[:6]}"
    direct = _traced_attempts(url, group)
    # What oncepipe.db.connect sets behind PgBouncer's transaction pooling.
    pooled = _traced_attempts(url, group + "-p", prepare_threshold=None)

    def named_parses(trace: str) -> int:
        return sum(
            1 for line in trace.splitlines() if "Parse" in line and "oncepipe_attempt" in line
        )

    assert named_parses(direct) == 1, direct
    assert named_parses(pooled) == 0, pooled
    assert _row(url, group) == (4, 6, 1)
    assert _row(url, group + "-p") == (4, 6, 1)
