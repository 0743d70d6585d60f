"""Replay in overlapping chunks: each chunk's claim is committed while the previous one is in
flight, and carries the ledger rows of the one before. The ledger must end where it did
with one chunk at a time: every dead letter sent once, its row ``sent`` with where it landed.
What a chunk costs the database is asserted too: one statement (one round trip, one commit),
and marks that rewrite no index entry.
"""

from __future__ import annotations

import tempfile
import uuid
from typing import Any

import psycopg
import pytest

from consumers.dlq import ledger
from consumers.dlq.headers import DeadLetter
from consumers.dlq.ledger import key_of
from consumers.dlq.reader import DeadLetterReader, Selection
from consumers.dlq.replay import Replayer
from oncepipe.db import connect
from oncepipe.settings import Settings
from producers import ProducerSettings
from tests.fixtures.pgtrace import round_trips, start_trace
from tests.integration import test_dlq
from tests.integration.test_dlq import Topics, ledger_rows, oncepipe_letter, replays_in, write

pytestmark = pytest.mark.integration

topics = test_dlq.topics  # the fixture: a source topic and its dead-letter topic


def _landed(settings: Settings) -> dict[tuple[str, int, int], tuple[int, int]]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        rows = conn.execute(
            "SELECT dlq_topic, dlq_partition, dlq_offset, replay_partition, replay_offset"
            " FROM oncepipe.dlq_replays WHERE outcome = 'sent'"
        ).fetchall()
    return {(t, int(p), int(o)): (int(rp), int(ro)) for t, p, o, rp, ro in rows}


def test_chunks_in_flight_together_send_each_dead_letter_once_and_record_where(
    settings: Settings, topics: Topics
) -> None:
    count = 11
    write(settings, topics.dlq, [oncepipe_letter(topics.source, n) for n in range(count)])
    letters = DeadLetterReader(settings).select(Selection(topics=(topics.dlq,))).letters
    assert len(letters) == count
    replayer = Replayer(settings, ProducerSettings(), batch_size=3)
    chunks: list[int] = []

    outcomes = replayer.replay(letters, progress=lambda done: chunks.append(len(done)))

    assert [o.ref for o in outcomes] == [letter.ref for letter in letters]
    assert {o.outcome for o in outcomes} == {"sent"}
    assert sorted(chunks) == sorted([3, 3, 3, 2])
    records = replays_in(settings, topics.source, expected=count)
    assert len({r.headers["replay_of"] for r in records}) == count
    assert [row[3:5] for row in ledger_rows(settings)] == [("sent", 1)] * count
    landed = _landed(settings)
    assert {key_of(letter): (o.partition, o.offset)
            for letter, o in zip(letters, outcomes, strict=True)} == landed  # fmt: skip

    # The ledger is complete: a second replay, one chunk at a time or not, sends nothing.
    again = replayer.replay(letters)
    assert {o.outcome for o in again} == {"skipped"}
    paced = replayer.replay(letters, rate=1_000)
    assert {o.outcome for o in paced} == {"skipped"}


def test_each_chunk_is_one_round_trip_and_one_transaction_of_the_ledger(
    settings: Settings, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 chunks: 4 claims (each carrying the marks of the chunks before) + the last marks."""
    count = 11
    write(settings, topics.dlq, [oncepipe_letter(topics.source, n) for n in range(count)])
    letters = DeadLetterReader(settings).select(Selection(topics=(topics.dlq,))).letters
    with tempfile.TemporaryFile() as out:

        def traced(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
            conn = connect(*args, **kwargs)
            start_trace(conn, out)
            return conn

        monkeypatch.setattr("consumers.dlq.replay.connect", traced)
        outcomes = Replayer(settings, ProducerSettings(), batch_size=3).replay(letters)
        out.seek(0)
        trace = out.read().decode("utf-8", "replace")
    assert {o.outcome for o in outcomes} == {"sent"}
    assert round_trips(trace) == 5, trace
    assert "BEGIN" not in trace, trace
    assert "SAVEPOINT" not in trace, trace
    assert [row[3:5] for row in ledger_rows(settings)] == [("sent", 1)] * count


def _fake_letter(topic: str, offset: int) -> DeadLetter:
    return DeadLetter(
        dlq_topic=topic, dlq_partition=0, dlq_offset=offset, dialect="oncepipe",
        source_topic="events.src", source_partition=offset % 3, source_offset=offset,
        source_timestamp=None, consumer_group="g", stage="handle", error_class="E",
        error_message="m", attempts=1, first_failure=None, last_failure=None, stacktrace="",
        event_id=str(uuid.uuid4()), event_type="click", key=b"k", value=b"v",
    )  # fmt: skip


def test_marking_claimed_rows_sent_is_a_heap_only_update(settings: Settings) -> None:
    """No index entry is rewritten: the row's new version stays on its page (0023)."""
    count = 400  # several pages of the ledger
    topic = f"hot.{uuid.uuid4().hex[:8]}.dlq"
    letters = [(_fake_letter(topic, n), "events.src") for n in range(count)]
    with connect(settings, autocommit=True) as conn, conn.transaction(force_rollback=True):
        claim = ledger.claim(conn, letters, by="test")
        assert len(claim.counts) == count
        marks = ledger.Marks()
        for n, (letter, _) in enumerate(letters):
            marks.sent(claim.claim_id, key_of(letter), 0, n)
        ledger.record(conn, marks)
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
            " WHERE schemaname = 'oncepipe' AND relname = 'dlq_replays'"
        ).fetchone()
        sent = conn.execute(
            "SELECT count(*) FROM oncepipe.dlq_replays WHERE dlq_topic = %s AND outcome = 'sent'",
            (topic,),
        ).fetchone()
    assert sent == (count,)
    assert row is not None
    updated, hot = row
    assert updated == count
    assert hot >= 0.9 * count, f"{hot} of {count} marks were heap-only updates"
