"""The replay's chunk sender: every record's own delivery report decides its ledger mark.

A fake client stands in for librdkafka so that reports can come out of order, with an error
in the middle of a chunk, or not at all; the replay's bookkeeping (``Replayer._land``) then
turns them into outcomes and marks: sent only on the record's own report, failed otherwise,
each record once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from consumers.deadletter_headers import Failure, dead_letter_headers
from consumers.dlq import ledger
from consumers.dlq.headers import DeadLetter, parse_dead_letter
from consumers.dlq.replay import Replayer, _Flight
from consumers.dlq.sender import ChunkSender, Sent
from oncepipe.kafka import KafkaError, KafkaException
from oncepipe.settings import load_settings
from producers import ProducerSettings

DLQ = "events.click.dlq"
FIRST = datetime(2026, 1, 1, tzinfo=UTC)


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeClient:
    """Holds each produced record's callback; ``answer`` reports them in the order given."""

    def __init__(self, refuse: set[bytes] | None = None) -> None:
        self.produced: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.callbacks: list[Callable[[KafkaError | None, Any], None]] = []
        self.refuse = refuse or set()
        self.plan: list[tuple[int, KafkaError | None]] = []  # served by the next poll

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kw: Any) -> None:
        if value in self.refuse:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.produced.append((topic, key, value, kw["headers"]))
        self.callbacks.append(kw["on_delivery"])

    def poll(self, timeout: float = 0.0) -> int:
        plan, self.plan = self.plan, []
        for n, error in plan:
            self.callbacks[n](error, None if error else FakeMessage(n % 2, 100 + n))
        return len(plan)

    def flush(self, timeout: float = 0.0) -> int:
        return 0

    def purge(self, **kw: Any) -> None:
        pass


class FakeSender(ChunkSender):
    def __init__(self, client: FakeClient) -> None:
        self._fake = client
        super().__init__(load_settings(), ProducerSettings())

    def _create(self) -> Any:
        return self._fake


def letters(count: int) -> list[tuple[DeadLetter, str]]:
    failure = Failure("x.Error", "boom", "tb")
    out = []
    for n in range(count):
        headers = dead_letter_headers(
            topic="events.click", partition=0, offset=n, timestamp_ms=None,
            consumer_group="clicks", stage="handle", failure=failure, attempts=1,
            first_failure=FIRST, original_headers=[("event_id", f"e-{n}".encode())],
        )  # fmt: skip
        raw = [(name, v.encode() if isinstance(v, str) else v) for name, v in headers]
        letter = parse_dead_letter(
            raw, b"k%d" % n, b"v%d" % n, dlq_topic=DLQ, dlq_partition=0, dlq_offset=n
        )
        out.append((letter, "events.click"))
    return out


def claimed(chunk: list[tuple[DeadLetter, str]]) -> ledger.Claim:
    return ledger.Claim(uuid.uuid4(), {ledger.key_of(letter): 1 for letter, _ in chunk})


def land(client: FakeClient, chunk: list[tuple[DeadLetter, str]]) -> _Flight:
    sender = FakeSender(client)
    replayer = Replayer(load_settings(), ProducerSettings(delivery_timeout_ms=1_000))
    flight = _Flight.launch(sender, chunk, claimed(chunk))
    return replayer._land(sender, flight)


def test_reports_out_of_order_land_on_their_own_records() -> None:
    chunk = letters(5)
    client = FakeClient()
    client.plan = [(n, None) for n in (4, 0, 3, 1, 2)]

    flight = land(client, chunk)

    assert [o.outcome for o in flight.outcomes] == ["sent"] * 5
    assert [(o.partition, o.offset) for o in flight.outcomes] == [
        (n % 2, 100 + n) for n in range(5)
    ]
    assert flight.marks.offsets == [0, 1, 2, 3, 4]
    assert flight.marks.landed_offsets == [100, 101, 102, 103, 104]
    assert flight.marks.outcomes == ["sent"] * 5


def test_a_failed_report_in_the_middle_of_a_chunk_is_failed_and_the_rest_sent() -> None:
    chunk = letters(5)
    client = FakeClient()
    client.plan = [(0, None), (1, None), (2, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)),
                   (3, None), (4, None)]  # fmt: skip

    flight = land(client, chunk)

    assert [o.outcome for o in flight.outcomes] == ["sent", "sent", "failed", "sent", "sent"]
    assert "delivering #2" in flight.outcomes[2].reason
    marks = flight.marks
    assert list(zip(marks.offsets, marks.outcomes, marks.landed_offsets, strict=True)) == [
        (0, "sent", 100), (1, "sent", 101), (2, "failed", None), (3, "sent", 103),
        (4, "sent", 104),
    ]  # fmt: skip
    assert marks.errors[2] is not None
    assert marks.errors.count(None) == 4


def test_a_record_refused_when_queued_is_failed_and_the_others_are_sent() -> None:
    chunk = letters(3)
    client = FakeClient(refuse={b"v1"})
    client.plan = [(0, None), (1, None)]  # the two queued: positions 0 and 1 of the client

    flight = land(client, chunk)

    assert [o.outcome for o in flight.outcomes] == ["sent", "failed", "sent"]
    assert "producing #1" in flight.outcomes[1].reason
    assert [r[2] for r in client.produced] == [b"v0", b"v2"]


def test_a_record_without_report_is_given_up_once_and_a_late_report_is_ignored() -> None:
    sent = Sent(3)
    first: Any = FakeMessage(0, 5)
    late: Any = FakeMessage(0, 6)
    sent.report(0, None, first)
    sent.give_up("not within the delivery timeout")
    sent.report(1, None, late)  # too late: already answered as failed
    sent.give_up("again")

    assert sent.left == 0
    assert sent.offsets == [5, None, None]
    assert sorted(sent.errors) == [1, 2]
    assert "not within the delivery timeout" in str(sent.errors[1])


def test_records_go_out_in_order_with_the_replay_headers() -> None:
    chunk = letters(3)
    client = FakeClient()
    client.plan = [(n, None) for n in range(3)]

    land(client, chunk)

    assert [(r[1], r[2]) for r in client.produced] == [(b"k0", b"v0"), (b"k1", b"v1"),
                                                         (b"k2", b"v2")]  # fmt: skip
    assert client.produced[1][3] == [
        ("event_id", b"e-1"),
        ("replay_of", f"{DLQ}:0:1".encode()),
        ("replay_count", b"1"),
    ]
