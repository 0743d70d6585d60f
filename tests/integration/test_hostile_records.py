"""A record can never stop a group: hostile headers and tombstones become byte-exact dead letters.

Records a well-behaved client never writes (a NUL byte or ``ff fe 80`` in a header value, a
null header value, a header NAME that is not UTF-8, a tombstone) are written by a raw producer
the tests own. Each becomes exactly one dead letter whose key, value and headers are the
record's bytes as they were; the worker keeps running and applies the records around them;
``oncepipe dlq`` lists, groups, shows and replays them, byte-exact again.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from consumers.deadletter_headers import (
    CONSUMER_GROUP,
    ERROR_CLASS,
    HEADERS_UNREADABLE,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    STAGE,
)
from consumers.decoding import read_headers
from consumers.dlq.headers import is_dead_letter_header
from oncepipe.kafka import OFFSET_BEGINNING, AdminClient, Consumer, TopicPartition
from oncepipe.settings import Settings
from producers.outbox import event_headers
from schemas import ClickEvent, Codec
from tests.fixtures.hostile import HostileRecord, RawRecord, produce_raw, read_raw
from tests.fixtures.poison import assert_applied_exactly, good_record, produce_records
from tests.fixtures.relay import ONCEPIPE, RelayThread, worker_env
from tests.fixtures.workers import WorkerPool, caught_up, make_clicks, wait_until

pytestmark = pytest.mark.integration

CODEC = Codec.load()
WORKER_ENV = {"unknown_schema_grace_s": "0", "batch_size": "100"}
NOT_AVRO = b"\x00\x01 not an oncepipe event"


def raw_event(event: ClickEvent) -> HostileRecord:
    """A well-formed click record, as the raw producer writes it."""
    encoded = CODEC.encode(event)
    headers = [(name.encode(), value.encode()) for name, value in event_headers(encoded)]
    return HostileRecord(encoded.key, encoded.value, headers)


@dataclass(frozen=True)
class Hostile:
    """The four hostile records of the scenario, and what their dead letters must carry."""

    name: str
    record: HostileRecord
    stage: str
    error_class: str
    unreadable: bool = False

    @property
    def kept_headers(self) -> tuple[tuple[str, bytes | None], ...]:
        """The original headers a dead letter keeps: all of them, or none when unreadable."""
        if self.unreadable:
            return ()
        return tuple((name.decode(), value) for name, value in self.record.headers)


def hostile_records(event: ClickEvent) -> list[Hostile]:
    """(a) NUL header value, (b) valid event with a non-UTF-8 header NAME, (c) ``ff fe 80``
    and a null header value, (d) a tombstone."""
    valid = raw_event(event)
    return [
        Hostile(
            "nul-value",
            HostileRecord(b"user-a", NOT_AVRO, [(b"trace", b"a\x00b"), (b"kind", b"x")]),
            "decode",
            "schemas.errors.BadMagicError",
        ),
        Hostile(
            "bad-name",
            HostileRecord(valid.key, valid.value, [*valid.headers, (b"\xffname\x80", b"v")]),
            "decode",
            "consumers.decoding.UnreadableHeadersError",
            unreadable=True,
        ),
        Hostile(
            "bad-bytes-and-null",
            HostileRecord(b"user-c", NOT_AVRO, [(b"bad", b"\xff\xfe\x80"), (b"none", None)]),
            "decode",
            "schemas.errors.BadMagicError",
        ),
        Hostile(
            "tombstone",
            HostileRecord(b"user-d", None, [(b"event_id", b"gone"), (b"empty", b"")]),
            "decode",
            "consumers.decoding.TombstoneError",
        ),
    ]


def header(record: RawRecord, name: str) -> bytes | None:
    """The value of the dead-letter header ``name``."""
    assert record.headers is not None
    found = [value for header_name, value in record.headers if header_name == name]
    assert len(found) == 1, (name, record.headers)
    return found[0]


def originals(record: RawRecord) -> tuple[tuple[str, bytes | None], ...]:
    """The record's headers other than any dialect's dead-letter ones."""
    assert record.headers is not None
    return tuple((n, v) for n, v in record.headers if not is_dead_letter_header(n))


def dlq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``oncepipe dlq ...``; it must succeed."""
    result = subprocess.run(
        [ONCEPIPE, "dlq", *args],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def dlq_json(settings: Settings, *args: str) -> dict[str, object]:
    data = json.loads(dlq(settings, *args, "--json").stdout)
    assert isinstance(data, dict)
    return data


@pytest.fixture
def replay_topic(make_topic: Callable[..., str]) -> str:
    """A one-partition topic replays are sent to."""
    return make_topic("replayed", 1)


def test_hostile_records_become_byte_exact_dead_letters_and_every_dlq_command_handles_them(
    worker_pool: WorkerPool,
    dlq_topic: str,
    kafka_admin: AdminClient,
    relay_thread: Callable[..., RelayThread],
    replay_topic: str,
) -> None:
    settings = worker_pool.settings
    events = make_clicks(46, seed=151)
    hostile = hostile_records(events[45])
    # Partition 0: good, (a), good, (b), good; partition 1: good, (c), good, (d), good.
    layout: dict[int, list[int | str]] = {0: [0, "a", 1, "b", 2], 1: [3, "c", 4, "d", 5]}
    by_letter = dict(zip("abcd", hostile, strict=True))
    where: dict[tuple[int, int], Hostile] = {}
    for partition, items in layout.items():
        batch = [raw_event(events[i]) if isinstance(i, int) else by_letter[i].record
                 for i in items]  # fmt: skip
        offsets = produce_raw(kafka_admin, worker_pool.topic, partition, batch)
        for item, offset in zip(items, offsets, strict=True):
            if isinstance(item, str):
                where[partition, offset] = by_letter[item]
    rest = produce_records(settings, worker_pool.topic, [good_record(e) for e in events[6:45]])
    total = 10 + len(rest)

    relay_thread()
    worker = worker_pool.start(**WORKER_ENV)
    url = settings.database_url.get_secret_value()
    wait_until(caught_up(url, worker_pool.group, total), 90, "the worker to pass every record")
    assert worker.alive(), worker.text()[-3000:]
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert_applied_exactly(worker_pool, events[:45], total)

    letters = read_raw(settings.kafka_bootstrap_servers, dlq_topic, expected=4)
    seen: set[tuple[int, int]] = set()
    for letter in letters:
        source = (
            int(header(letter, ORIGINAL_PARTITION) or b""),
            int(header(letter, ORIGINAL_OFFSET) or b""),
        )
        seen.add(source)
        expected = where[source]
        assert (letter.key, letter.value) == (expected.record.key, expected.record.value)
        assert originals(letter) == expected.kept_headers, expected.name
        assert header(letter, STAGE) == expected.stage.encode()
        assert header(letter, ERROR_CLASS) == expected.error_class.encode()
        assert header(letter, CONSUMER_GROUP) == worker_pool.group.encode()
        marker = [v for n, v in letter.headers or () if n == HEADERS_UNREADABLE]
        assert bool(marker) == expected.unreadable, expected.name
    assert seen == set(where)

    # A record with an unreadable header name sitting on the dead-letter topic itself.
    foreign = HostileRecord(b"k-foreign", b"\xff\x00raw", [(b"\xfe\xff", None), (b"ok", b"1")])
    (foreign_offset,) = produce_raw(kafka_admin, dlq_topic, 1, [foreign])
    foreign_ref = f"{dlq_topic}:1:{foreign_offset}"

    listed = dlq_json(settings, "list", "--topic", worker_pool.topic)
    rows = listed["dead_letters"]
    assert isinstance(rows, list)
    assert len(rows) == 5
    refs = {row["ref"]: row for row in rows}
    assert refs[foreign_ref]["dialect"] == "unreadable"
    assert dlq(settings, "list", "--topic", dlq_topic).stdout.count("\n") == 6  # header + 5
    failures = dlq_json(settings, "failures", "--topic", dlq_topic)
    assert failures["dead_letters"] == 5
    assert "HeadersUnreadable" in dlq(settings, "failures", "--topic", dlq_topic).stdout

    for ref in refs:
        shown = dlq_json(settings, "show", ref)
        text = dlq(settings, "show", ref).stdout
        assert "\x00" not in text
        assert "\ufffd" not in text
        if shown["source_offset"] is None:
            assert shown["error_class"] == "HeadersUnreadable"
            assert shown["key_hex"] == b"k-foreign".hex()
            continue
        expected = where[int(str(shown["source_partition"])), int(str(shown["source_offset"]))]
        assert shown["headers_hex"] == [
            [name.encode().hex(), None if value is None else value.hex()]
            for name, value in expected.kept_headers
        ]
        if expected.name == "bad-bytes-and-null":
            assert shown["headers"] == [["bad", "\\xff\\xfe\\x80"], ["none", None]]
            assert "bad: \\xff\\xfe\\x80" in text
            assert "none: (null)" in text
        if expected.name == "nul-value":
            assert "trace: a\\x00b" in text
        if expected.name == "bad-name":
            assert "headers_unreadable" in text

    replay = dlq_json(settings, "replay", "--topic", dlq_topic, "--to", replay_topic, "--yes")
    assert replay["counts"] == {"sent": 5}
    replayed = read_raw(settings.kafka_bootstrap_servers, replay_topic, expected=5)
    origins = {
        (header(r, "replay_of") or b"").decode(): r for r in replayed
    }  # the dead letter each replay came from
    assert set(origins) == set(refs)
    for ref, record in origins.items():
        assert header(record, "replay_count") == b"1"
        kept = tuple((n, v) for n, v in originals(record) if n not in {"replay_of", "replay_count"})
        if ref == foreign_ref:
            assert (record.key, record.value, kept) == (foreign.key, foreign.value, ())
            continue
        source = refs[ref]
        expected = where[int(str(source["source_partition"])), int(str(source["source_offset"]))]
        assert (record.key, record.value) == (expected.record.key, expected.record.value)
        assert kept == expected.kept_headers


def test_two_groups_dead_lettering_one_record_each_get_their_own_dead_letter(
    worker_pool: WorkerPool,
    dlq_topic: str,
    kafka_admin: AdminClient,
    relay_thread: Callable[..., RelayThread],
) -> None:
    settings = worker_pool.settings
    events = make_clicks(3, seed=152)
    batch = [raw_event(events[0]), HostileRecord(b"user-p", NOT_AVRO), raw_event(events[1])]
    offsets = produce_raw(kafka_admin, worker_pool.topic, 0, batch)
    other = WorkerPool(settings, worker_pool.tmp_path / "other", f"g2-{uuid.uuid4().hex[:8]}",
                       worker_pool.topic)  # fmt: skip
    other.tmp_path.mkdir()
    relay_thread()
    url = settings.database_url.get_secret_value()
    try:
        for pool in (worker_pool, other):
            worker = pool.start(**WORKER_ENV)
            wait_until(caught_up(url, pool.group, 3), 90, f"group {pool.group} to pass the record")
            assert worker.terminate() == 0, worker.text()[-3000:]
    finally:
        other.reap()

    letters = read_raw(settings.kafka_bootstrap_servers, dlq_topic, expected=2)
    groups = sorted((header(r, CONSUMER_GROUP) or b"").decode() for r in letters)
    assert groups == sorted([worker_pool.group, other.group])
    for letter in letters:
        assert (header(letter, ORIGINAL_PARTITION), header(letter, ORIGINAL_OFFSET)) == (
            b"0",
            str(offsets[1]).encode(),
        )
        assert (letter.key, letter.value) == (b"user-p", NOT_AVRO)
        assert header(letter, STAGE) == b"decode"
        assert header(letter, "dlq.attempts") == b"1"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT dedupe_id FROM oncepipe.outbox WHERE topic = %s ORDER BY dedupe_id",
            (dlq_topic,),
        ).fetchall()
    assert sorted(row[0] for row in rows) == sorted(
        f"{worker_pool.topic}:0:{offsets[1]}:{group}" for group in groups
    )


def test_an_unreadable_header_name_in_a_hot_loop_leaves_no_pending_error(
    settings: Settings, make_topic: Callable[..., str]
) -> None:
    """confluent-kafka returns a partial header list with a UnicodeDecodeError still pending;
    once a loop has specialised its ``message.headers()`` call, the interpreter no longer turns
    that into an exception there, and it surfaced at an unrelated later line of the worker (a
    crash loop in the chaos round). ``message_headers`` must raise it where it happens."""
    topic = make_topic(partitions=1)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    plain = [HostileRecord(b"k%d" % n, b"v", ((b"ok", b"1"),)) for n in range(60)]
    bad = HostileRecord(b"bad", b"v", ((b"name-\xff\xfe", b"value"), (b"after", None)))
    produce_raw(admin, topic, 0, [*plain[:40], bad, *plain[40:]])
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"hot-{topic}"}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        messages: list[Any] = []
        while len(messages) < 61:
            messages += consumer.consume(100, timeout=1)
    finally:
        consumer.close()
    unreadable = []
    for message in messages:  # a hot loop, as in the worker's decoding step
        headers, reason = read_headers(message)
        getattr(message, "no_such_attribute", None)  # would raise a pending error
        if reason is not None:
            unreadable.append((message.key(), headers, reason))
    assert unreadable == [(b"bad", (), unreadable[0][2])]
    assert "UnicodeDecodeError" in unreadable[0][2]


def test_an_unreadable_header_name_read_twice_stays_unreadable(
    settings: Settings, make_topic: Callable[..., str]
) -> None:
    """A second ``headers()`` call on the same message returns the client's cached partial list
    with a NULL name (a queue-mode worker retrying a batch of the same messages died of a
    segmentation fault on it): ``message_headers`` must raise again, never hand that list out."""
    topic = make_topic(partitions=1)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    bad = HostileRecord(b"bad", b"v", ((b"name-\xff\xfe", b"value"), (b"after", None)))
    produce_raw(admin, topic, 0, [bad])
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": f"twice-{topic}"}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        messages: list[Any] = []
        while not messages:
            messages += consumer.consume(1, timeout=1)
    finally:
        consumer.close()
    first = read_headers(messages[0])
    second = read_headers(messages[0])
    assert first[0] == ()
    assert second == first
    assert first[1] is not None
    assert "UnicodeDecodeError" in first[1]
