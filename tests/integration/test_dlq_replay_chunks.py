"""Replay in overlapping chunks: each chunk's claim is committed while the previous one is in
flight, and carries the ledger rows of the one before. The ledger must end where it did
with one chunk at a time: every dead letter sent once, its row ``sent`` with where it landed.
"""

from __future__ import annotations

import psycopg
import pytest

from consumers.dlq.ledger import key_of
from consumers.dlq.reader import DeadLetterReader, Selection
from consumers.dlq.replay import Replayer
from oncepipe.settings import Settings
from producers import ProducerSettings
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
