"""What a replay puts on the wire, and how each record's own answer reaches the ledger.

The replay's send path writes each record's delivery report straight into its chunk; the
records it writes must stay byte for byte what the replay promised: the dead letter's key and
value, its original headers as they were (a replayed one's old ``replay_of``/``replay_count``
dropped) plus the new pair, in the dead letters' order per partition.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from consumers.dlq import ledger
from consumers.dlq.headers import REPLAY_COUNT, REPLAY_OF, DeadLetter
from consumers.dlq.reader import DeadLetterReader, Selection
from consumers.dlq.replay import Replayer
from oncepipe.db import connect
from oncepipe.kafka import OFFSET_BEGINNING, TopicPartition, create_consumer
from oncepipe.settings import Settings
from producers import ProducerSettings
from tests.integration import test_dlq
from tests.integration.test_dlq import CODEC, Letter, Topics, click, ledger_rows, oncepipe_letter
from tests.integration.test_dlq import write as write_letters

pytestmark = pytest.mark.integration

topics = test_dlq.topics  # the fixture: a source topic (3 partitions) and its dead-letter topic

Wire = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]


def wire_records(settings: Settings, topic: str, expected: int) -> dict[int, list[Wire]]:
    """Key, value and raw headers of every record of ``topic``, per partition in offset order."""
    consumer = create_consumer(settings, f"reader-{uuid.uuid4().hex}")
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: dict[int, list[tuple[int, Wire]]] = {}
        seen, empty = 0, 0
        # Until every expected record is in and one more read brings nothing (an extra record
        # would show); a topic that never fills fails after 60 empty reads.
        while (seen < expected or empty < 1) and empty < 60:
            messages = consumer.consume(100, timeout=1.0)
            empty = 0 if messages else empty + 1
            for message in messages:
                if message.error() is None:
                    headers: Any = message.headers() or ()
                    wire = (message.key(), message.value(), tuple(headers))
                    found.setdefault(message.partition() or 0, []).append(
                        (message.offset() or 0, wire)
                    )
                    seen += 1
        return {p: [w for _, w in sorted(rows)] for p, rows in found.items()}
    finally:
        consumer.close()


def promised(letter: DeadLetter) -> list[tuple[str, bytes | None]]:
    """The replay headers as the replay has always built them (one filter, then the pair)."""
    kept = [(n, v) for n, v in letter.headers if n not in {REPLAY_OF, REPLAY_COUNT}]
    return [
        *kept,
        (REPLAY_OF, letter.ref.encode()),
        (REPLAY_COUNT, b"%d" % (letter.replay_count + 1)),
    ]


def digest(records: Sequence[Wire]) -> str:
    h = hashlib.sha256()
    for key, value, headers in records:
        h.update(repr((key, value, [(n, v) for n, v in headers])).encode())
    return h.hexdigest()


def test_replayed_records_are_byte_for_byte_the_dead_letters_with_the_replay_pair(
    settings: Settings, topics: Topics
) -> None:
    written: list[Letter] = []
    for n in range(12):
        letter = oncepipe_letter(topics.source, n)
        extra: list[tuple[str, str | bytes | None]] = [("x-nul", None), ("x-bin", b"\xff\x00")]
        if n % 4 == 3:  # the dead letter of a record that had been replayed before
            extra += [("replay_of", b"old.dlq:0:9"), ("replay_count", b"2")]
        # After the dlq.* ones: the reader keeps every other header, in order.
        written.append(Letter(letter.key, letter.value, letter.event_id, letter.headers + extra))
    write_letters(settings, topics.dlq, written)
    letters = DeadLetterReader(settings).select(Selection(topics=(topics.dlq,))).letters
    assert len(letters) == 12

    outcomes = Replayer(settings, ProducerSettings(), batch_size=5).replay(letters)

    assert [o.outcome for o in outcomes] == ["sent"] * 12
    wire = wire_records(settings, topics.source, expected=12)
    placed: list[tuple[int, int, DeadLetter]] = []
    for o, dead in zip(outcomes, letters, strict=True):
        assert o.partition is not None
        assert o.offset is not None
        placed.append((o.partition, o.offset, dead))
    # Per partition (in offset order), the records are the dead letters in THEIR order,
    # exactly as promised: the expected list is built in the dead letters' order.
    for partition, records in wire.items():
        expected = [
            (letter.key, letter.value, tuple(promised(letter)))
            for p, _, letter in placed
            if p == partition
        ]
        assert digest(records) == digest(expected), partition
    counts = {dict(h)[REPLAY_COUNT] for rs in wire.values() for _, _, h in rs}
    assert counts == {b"1", b"3"}


def test_a_record_refused_in_the_middle_of_a_chunk_is_failed_and_the_rest_are_sent(
    settings: Settings, topics: Topics
) -> None:
    big = CODEC.encode(click("x" * 3000)).value
    written = [oncepipe_letter(topics.source, n, value=big if n == 2 else None) for n in range(5)]
    write_letters(settings, topics.dlq, written)
    letters = DeadLetterReader(settings).select(Selection(topics=(topics.dlq,))).letters
    small = ProducerSettings(message_max_bytes=1024)

    outcomes = Replayer(settings, small, batch_size=5).replay(letters)

    assert [o.outcome for o in outcomes] == ["sent", "sent", "failed", "sent", "sent"]
    assert [row[3] for row in ledger_rows(settings)] == ["sent", "sent", "failed", "sent", "sent"]
    wire = wire_records(settings, topics.source, expected=4)
    refs = sorted(dict(h).get(REPLAY_OF) or b"" for rs in wire.values() for _, _, h in rs)
    assert refs == sorted(letters[n].ref.encode() for n in (0, 1, 3, 4))

    again = Replayer(settings, ProducerSettings(), batch_size=5).replay(letters)

    assert [o.outcome for o in again] == ["skipped", "skipped", "sent", "skipped", "skipped"]
    assert [row[3] for row in ledger_rows(settings)] == ["sent"] * 5


def test_a_claim_and_its_marks_store_every_column_shared_by_the_chunk_or_not(
    settings: Settings,
) -> None:
    """Chunks whose columns share one value and chunks whose do not; marks of both kinds."""
    dlq = f"ledger.shared.{uuid.uuid4().hex[:8]}.dlq"
    shared = [(letter, "events.click") for letter, _ in chunk_of(dlq, 3, sources=["a"] * 3)]
    mixed = [
        (letter, to)
        for (letter, _), to in zip(
            chunk_of(dlq, 3, first=3, sources=["a", None, "b"], replayed=1),
            ["x", "y", "x"],
            strict=True,
        )
    ]
    with connect(settings, "test", autocommit=True) as conn:
        one = ledger.claim(conn, shared, by="t")
        two = ledger.claim(conn, mixed, by="t", marks=sent_marks(one))
        ledger.record(conn, sent_marks(two))
        rows = conn.execute(
            "SELECT dlq_offset, source_topic, destination_topic, replay_count, outcome,"
            " replay_offset, error FROM oncepipe.dlq_replays WHERE dlq_topic = %s ORDER BY 1",
            (dlq,),
        ).fetchall()
        conn.execute("DELETE FROM oncepipe.dlq_replays WHERE dlq_topic = %s", (dlq,))

    assert rows == [
        (0, "a", "events.click", 1, "sent", 100, None),
        (1, "a", "events.click", 1, "sent", 101, None),
        (2, "a", "events.click", 1, "sent", 102, None),
        (3, "a", "x", 1, "sent", 103, None),
        (4, None, "y", 2, "sent", 104, None),
        (5, "b", "x", 1, "failed", None, "refused"),
    ]


def chunk_of(
    dlq: str, count: int, *, first: int = 0, sources: list[str | None], replayed: int | None = None
) -> list[tuple[DeadLetter, str]]:
    """Dead letters at offsets ``first``...; the one at index ``replayed`` was replayed once."""
    out = []
    for n, source in enumerate(sources[:count]):
        headers: list[tuple[str, bytes | None]] = [("event_id", f"e-{first + n}".encode())]
        if n == replayed:
            headers.append((REPLAY_COUNT, b"1"))
        letter = DeadLetter(
            dlq_topic=dlq, dlq_partition=0, dlq_offset=first + n, dialect="oncepipe",
            source_topic=source, source_partition=0, source_offset=n, source_timestamp=None,
            consumer_group="g", stage="handle", error_class="E", error_message="m",
            attempts=1, first_failure=None, last_failure=None, stacktrace="",
            event_id=f"e-{first + n}", event_type=None, key=b"k", value=b"v",
            headers=tuple(headers),
        )  # fmt: skip
        out.append((letter, source or "events.click"))
    return out


def sent_marks(claim: ledger.Claim) -> ledger.Marks:
    """Every claimed row sent at offset 100 + its own, except offset 5: refused."""
    marks = ledger.Marks()
    for key in sorted(claim.counts):
        if key[2] == 5:
            marks.failed(claim.claim_id, key, "refused")
        else:
            marks.sent(claim.claim_id, key, 0, 100 + key[2])
    return marks
