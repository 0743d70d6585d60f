"""``oncepipe dlq``: list, failures, show and replay over real dead-letter topics.

The dead-letter writer lands later, so these tests write dead letters of the four dialects
(oncepipe, Spring, Connect, Streams) straight into a ``<topic>.dlq`` with a producer.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from consumers.deadletter_headers import Failure, dead_letter_headers
from oncepipe.kafka import AdminClient, create_producer, create_topics
from oncepipe.settings import Settings
from producers.outbox import event_headers
from schemas import ClickAction, ClickEvent, Codec
from tests.fixtures.kafka import Record, read_topic
from tests.fixtures.relay import ONCEPIPE, worker_env
from tests.fixtures.user_types import write_shop_package

pytestmark = pytest.mark.integration

CODEC = Codec.load()
FAILED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
DEAD_LETTER_PREFIXES = ("dlq.", "kafka_dlt-", "__connect.errors.", "__streams.errors.")


@dataclass(frozen=True)
class Topics:
    """A source topic and its dead-letter topic."""

    source: str
    dlq: str


@pytest.fixture
def topics(make_topic: Callable[..., str], kafka_admin: AdminClient) -> Iterator[Topics]:
    source = make_topic("events.dlqtest", partitions=3)
    dlq = f"{source}.dlq"
    create_topics(kafka_admin, {dlq: 2})
    yield Topics(source, dlq)
    for future in kafka_admin.delete_topics([dlq], operation_timeout=30).values():
        future.result(timeout=60)


def click(user: str = "user-1") -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4(),
        user_id=user,
        item_id="item-1",
        action=ClickAction.CLICK,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        session_id=f"s-{user}",
    )


@dataclass(frozen=True)
class Letter:
    """A dead letter to write: the original record plus its dead-letter headers."""

    key: bytes
    value: bytes
    event_id: str
    headers: list[tuple[str, str | bytes | None]]
    partition: int = 0


def original(user: str = "user-1") -> tuple[bytes, bytes, str, list[tuple[str, str]]]:
    encoded = CODEC.encode(click(user))
    return encoded.key, encoded.value, str(encoded.event_id), event_headers(encoded)


def oncepipe_letter(
    source: str,
    offset: int,
    *,
    stage: str = "handle",
    error: str = "consumers.handlers.clicks.UnknownItemError",
    message: str = "item item-1 is unknown",
    group: str = "clicks",
    value: bytes | None = None,
    failed_at: datetime = FAILED_AT,
) -> Letter:
    key, good_value, event_id, headers = original()
    built = dead_letter_headers(
        topic=source,
        partition=1,
        offset=offset,
        timestamp_ms=1_767_225_600_000,
        consumer_group=group,
        stage=stage,  # type: ignore[arg-type]
        failure=Failure(error, message, f"Traceback (most recent call last):\n{error}: boom\n"),
        attempts=3,
        first_failure=failed_at - timedelta(seconds=30),
        last_failure=failed_at,
        original_headers=headers,
    )
    return Letter(key, value if value is not None else good_value, event_id, list(built))


def spring_letter(source: str, offset: int) -> Letter:
    key, value, event_id, headers = original("user-2")
    return Letter(
        key,
        value,
        event_id,
        [
            *headers,
            ("kafka_dlt-original-topic", source),
            ("kafka_dlt-original-partition", struct.pack(">i", 2)),
            ("kafka_dlt-original-offset", struct.pack(">q", offset)),
            ("kafka_dlt-original-timestamp", struct.pack(">q", 1_767_225_600_000)),
            ("kafka_dlt-original-consumer-group", "spring-clicks"),
            (
                "kafka_dlt-exception-fqcn",
                "org.springframework.kafka.ListenerExecutionFailedException",
            ),
            ("kafka_dlt-exception-message", "Listener failed; price 42 out of range"),
            ("kafka_dlt-exception-stacktrace", "org.springframework...\n\tat Foo.bar(Foo.java:1)"),
        ],
    )


def connect_letter(source: str, offset: int) -> Letter:
    key, value, event_id, headers = original("user-3")
    return Letter(
        key,
        value,
        event_id,
        [
            *headers,
            ("__connect.errors.topic", source),
            ("__connect.errors.partition", "0"),
            ("__connect.errors.offset", str(offset)),
            ("__connect.errors.connector.name", "pg-sink"),
            ("__connect.errors.task.id", "0"),
            ("__connect.errors.stage", "VALUE_CONVERTER"),
            ("__connect.errors.class.name", "io.confluent.connect.avro.AvroConverter"),
            (
                "__connect.errors.exception.class.name",
                "org.apache.kafka.connect.errors.DataException",
            ),
            ("__connect.errors.exception.message", "Failed to deserialize data"),
            ("__connect.errors.exception.stacktrace", "org.apache.kafka.connect..."),
        ],
    )


def streams_letter(source: str, offset: int) -> Letter:
    key, value, event_id, headers = original("user-4")
    return Letter(
        key,
        value,
        event_id,
        [
            *headers,
            ("__streams.errors.exception", "java.lang.IllegalStateException"),
            ("__streams.errors.message", "state store closed"),
            ("__streams.errors.stacktrace", "java.lang.IllegalStateException: ..."),
            ("__streams.errors.topic", source),
            ("__streams.errors.partition", "1"),
            ("__streams.errors.offset", str(offset)),
        ],
        partition=1,
    )


def four_dialects(source: str) -> list[Letter]:
    return [
        oncepipe_letter(source, 10),
        spring_letter(source, 300_000_000_000),
        connect_letter(source, 30),
        streams_letter(source, 40),
    ]


def write(settings: Settings, topic: str, letters: list[Letter]) -> None:
    producer = create_producer(settings, {"linger.ms": 5})
    for letter in letters:
        producer.produce(
            topic,
            key=letter.key,
            value=letter.value,
            headers=letter.headers,
            partition=letter.partition,
        )
    assert producer.flush(30) == 0


def oncepipe(
    settings: Settings, *args: str, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [ONCEPIPE, "dlq", *args],
        env=worker_env(settings, **env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def as_json(settings: Settings, *args: str) -> dict[str, object]:
    data = json.loads(oncepipe(settings, *args, "--json").stdout)
    assert isinstance(data, dict)
    return data


def listed(settings: Settings, *args: str) -> list[dict[str, object]]:
    letters = as_json(settings, "list", *args)["dead_letters"]
    assert isinstance(letters, list)
    return letters


def ledger_rows(settings: Settings) -> list[tuple[object, ...]]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT dlq_topic, dlq_partition, dlq_offset, outcome, replay_count, event_id,"
            " destination_topic, replayed_by FROM oncepipe.dlq_replays ORDER BY 1, 2, 3"
        ).fetchall()


def replays_in(settings: Settings, topic: str, expected: int) -> list[Record]:
    return read_topic(settings.kafka_bootstrap_servers, topic, expected=expected, settle=1.5)


# -- list --------------------------------------------------------------------------------------


def test_list_reads_all_four_dialects_with_source_coordinates(
    settings: Settings, topics: Topics
) -> None:
    letters = four_dialects(topics.source)
    write(settings, topics.dlq, letters)

    found = {item["dialect"]: item for item in listed(settings, "--topic", topics.dlq)}

    assert set(found) == {"oncepipe", "spring", "connect", "streams"}
    for item in found.values():
        assert item["source_topic"] == topics.source
        assert item["dlq_topic"] == topics.dlq
    assert (found["oncepipe"]["source_partition"], found["oncepipe"]["source_offset"]) == (1, 10)
    # Spring's partition and offset are big-endian binary numbers on the wire.
    assert (found["spring"]["source_partition"], found["spring"]["source_offset"]) == (
        2,
        300_000_000_000,
    )
    assert found["spring"]["consumer_group"] == "spring-clicks"
    assert (found["connect"]["stage"], found["connect"]["source_offset"]) == ("decode", 30)
    assert found["streams"]["error_class"] == "java.lang.IllegalStateException"
    assert found["oncepipe"]["attempts"] == 3
    assert {item["event_id"] for item in found.values()} == {x.event_id for x in letters}
    assert all(item["event_type"] == "ClickEvent" for item in found.values())


def test_list_filters_by_source_topic_group_stage_error_event_and_time(
    settings: Settings, topics: Topics
) -> None:
    old = FAILED_AT - timedelta(days=2)
    letters = [
        oncepipe_letter(topics.source, 1, stage="decode", error="schemas.errors.BadMagicError",
                        message="the message starts with 7b 22", failed_at=old),
        oncepipe_letter(topics.source, 2, group="billing"),
        oncepipe_letter(topics.source, 3, stage="validate",
                        error="schemas.errors.ValidationFailedError", message="user_id: too short"),
        spring_letter(topics.source, 4),
    ]  # fmt: skip
    write(settings, topics.dlq, letters)

    def offsets(*args: str) -> list[int]:
        found = listed(settings, "--topic", topics.source, *args)
        return sorted(int(str(i["source_offset"])) for i in found)

    assert offsets() == [1, 2, 3, 4]
    assert offsets("--stage", "decode") == [1]
    assert offsets("--group", "billing") == [2]
    assert offsets("--error", "ValidationFailed") == [3]
    assert offsets("--error", "out of range") == [4]
    assert offsets("--event-id", letters[2].event_id) == [3]
    assert offsets("--since", "1d") == [2, 3, 4]
    assert offsets("--until", (FAILED_AT - timedelta(days=1)).isoformat()) == [1]
    assert offsets("--limit", "2") == [1, 2]


def test_list_prints_a_tab_separated_table_when_not_on_a_terminal(
    settings: Settings, topics: Topics
) -> None:
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 5)])

    result = oncepipe(settings, "list", "--topic", topics.dlq)

    header, row = result.stdout.splitlines()
    assert header.split("\t")[:3] == ["dlq", "source", "event_id"]
    assert row.split("\t")[1] == f"{topics.source}[1]@5"
    assert "UnknownItemError" in row
    assert "1 dead letter(s)" in result.stderr


def test_unknown_dlq_topic_is_a_usage_error(settings: Settings) -> None:
    result = oncepipe(settings, "list", "--topic", "no.such.topic.dlq", check=False)
    assert result.returncode == 2
    assert "no.such.topic.dlq does not exist" in result.stderr


# -- failures ----------------------------------------------------------------------------------


def test_failures_group_by_error_class_and_masked_message(
    settings: Settings, topics: Topics
) -> None:
    letters = [
        oncepipe_letter(topics.source, n, message=f"item item-{n} of user {uuid.uuid4()} unknown")
        for n in range(3)
    ]
    letters.append(spring_letter(topics.source, 9))
    write(settings, topics.dlq, letters)

    data = as_json(settings, "failures", "--topic", topics.dlq)

    failures = data["failures"]
    assert isinstance(failures, list)
    assert [f["count"] for f in failures] == [3, 1]
    top = failures[0]
    assert top["error_class"] == "consumers.handlers.clicks.UnknownItemError"
    assert top["message"] == "item item-<n> of user <uuid> unknown"
    assert top["source_topics"] == [topics.source]
    assert top["first_seen"] <= top["last_seen"]
    assert len(top["fingerprint"]) == 10


# -- show --------------------------------------------------------------------------------------


def test_show_decodes_the_event_and_prints_the_stack_trace(
    settings: Settings, topics: Topics
) -> None:
    letter = oncepipe_letter(topics.source, 7)
    write(settings, topics.dlq, [letter])

    data = as_json(settings, "show", f"{topics.dlq}:0:0")

    assert data["ref"] == f"{topics.dlq}:0:0"
    event = data["event"]
    assert isinstance(event, dict)
    assert event["event_id"] == letter.event_id
    assert event["user_id"] == "user-1"
    assert data["decode_error"] is None
    assert "Traceback" in str(data["stacktrace"])
    assert ["event_id", letter.event_id] in data["headers"]  # type: ignore[operator]

    text = oncepipe(settings, "show", f"{topics.dlq}:0:0").stdout
    assert "event (ClickEvent)" in text
    assert "stack trace" in text


@pytest.mark.usefixtures("forget_user_types")
def test_show_decodes_a_user_event_type_named_by_import(
    settings: Settings, topics: Topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_shop_package(tmp_path / "outside")
    monkeypatch.syspath_prepend(str(root))
    from shop.events import OrderPlaced  # type: ignore[import-not-found]

    order = OrderPlaced(
        event_id=uuid.uuid4(),
        order_id="o-1",
        customer_id="c-1",
        amount_cents=1250,
        placed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    value = Codec.load().encode(order).value
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 3, value=value)])
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH", "")]))
    ref = f"{topics.dlq}:0:0"

    unknown = json.loads(oncepipe(settings, "show", ref, "--json", PYTHONPATH=path).stdout)
    assert unknown["event"] is None
    assert "UnknownFingerprintError" in str(unknown["decode_error"])

    args = ("show", ref, "--json", "--import", "shop.events")
    known = json.loads(oncepipe(settings, *args, PYTHONPATH=path).stdout)
    assert known["decode_error"] is None
    assert known["decoded_event_type"] == "OrderPlaced"
    assert known["event"]["order_id"] == "o-1"

    missing = oncepipe(settings, "show", ref, "--import", "no_such_pkg.events", check=False)
    assert missing.returncode == 2
    assert "--import no_such_pkg.events: cannot import it" in missing.stderr


def test_show_dumps_bytes_that_do_not_decode(settings: Settings, topics: Topics) -> None:
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 8, value=b'{"json": 1}')])

    data = as_json(settings, "show", f"{topics.dlq}:0:0")

    assert data["event"] is None
    assert "BadMagicError" in str(data["decode_error"])
    assert str(data["value_hex"]).startswith("00000000  7b 22 6a 73")


def test_show_of_a_missing_offset_fails_with_one_line(settings: Settings, topics: Topics) -> None:
    result = oncepipe(settings, "show", f"{topics.dlq}:0:5", check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no such record" in result.stderr or "empty" in result.stderr


# -- replay ------------------------------------------------------------------------------------


def test_replay_sends_each_dead_letter_once_to_its_source_topic(
    settings: Settings, topics: Topics
) -> None:
    letters = four_dialects(topics.source)
    write(settings, topics.dlq, letters)

    data = as_json(settings, "replay", "--topic", topics.dlq, "--yes")

    assert data["counts"] == {"sent": 4}
    records = replays_in(settings, topics.source, expected=4)
    assert len(records) == 4
    by_event = {r.headers["event_id"]: r for r in records}
    assert set(by_event) == {x.event_id for x in letters}
    listed_refs = {i["event_id"]: i["ref"] for i in listed(settings, "--topic", topics.dlq)}
    for letter in letters:
        record = by_event[letter.event_id]
        assert (record.key, record.value) == (letter.key, letter.value)
        assert not [h for h in record.headers if h.startswith(DEAD_LETTER_PREFIXES)]
        assert record.headers["event_type"] == "ClickEvent"
        assert record.headers["replay_of"] == listed_refs[letter.event_id]
        assert record.headers["replay_count"] == "1"
    rows = ledger_rows(settings)
    assert [row[3:5] for row in rows] == [("sent", 1)] * 4
    assert {row[6] for row in rows} == {topics.source}
    assert all("@" in str(row[7]) for row in rows)


def test_second_replay_sends_nothing_and_force_replays_with_the_next_count(
    settings: Settings, topics: Topics
) -> None:
    write(settings, topics.dlq, [oncepipe_letter(topics.source, n) for n in range(3)])
    as_json(settings, "replay", "--topic", topics.dlq, "--yes")

    again = as_json(settings, "replay", "--topic", topics.dlq, "--yes")
    assert again["counts"] == {"skipped": 3}
    assert len(replays_in(settings, topics.source, expected=3)) == 3

    forced = as_json(settings, "replay", "--topic", topics.dlq, "--yes", "--force")
    assert forced["counts"] == {"sent": 3}
    records = replays_in(settings, topics.source, expected=6)
    assert sorted(r.headers["replay_count"] for r in records) == ["1"] * 3 + ["2"] * 3
    assert [row[4] for row in ledger_rows(settings)] == [2, 2, 2]


def test_replay_by_ref_and_to_another_topic(
    settings: Settings, topics: Topics, make_topic: Callable[..., str]
) -> None:
    other = make_topic("events.elsewhere", partitions=1)
    write(settings, topics.dlq, [oncepipe_letter(topics.source, n) for n in range(3)])

    data = as_json(settings, "replay", f"{topics.dlq}:0:1", "--to", other, "--yes")

    assert data["counts"] == {"sent": 1}
    (record,) = replays_in(settings, other, expected=1)
    assert record.headers["replay_of"] == f"{topics.dlq}:0:1"
    assert replays_in(settings, topics.source, expected=0) == []


def test_replay_by_fingerprint_sends_only_that_failure(settings: Settings, topics: Topics) -> None:
    write(
        settings,
        topics.dlq,
        [oncepipe_letter(topics.source, n, message=f"item {n} unknown") for n in range(2)]
        + [spring_letter(topics.source, 5)],
    )
    failures = as_json(settings, "failures", "--topic", topics.dlq)["failures"]
    assert isinstance(failures, list)

    data = as_json(settings, "replay", "--fingerprint", failures[0]["fingerprint"], "--yes")

    assert data["counts"] == {"sent": 2}
    assert len(replays_in(settings, topics.source, expected=2)) == 2


def test_dry_run_sends_nothing_and_writes_no_ledger_rows(
    settings: Settings, topics: Topics
) -> None:
    write(settings, topics.dlq, four_dialects(topics.source))

    data = as_json(settings, "replay", "--topic", topics.dlq, "--dry-run")

    assert data["dry_run"] is True
    assert data["counts"] == {"would-send": 4}
    assert ledger_rows(settings) == []
    assert replays_in(settings, topics.source, expected=0) == []


def test_replay_without_a_terminal_and_without_yes_is_refused(
    settings: Settings, topics: Topics
) -> None:
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 1)])

    result = oncepipe(settings, "replay", "--topic", topics.dlq, check=False)

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--yes" in result.stderr
    assert ledger_rows(settings) == []


def test_a_refused_send_is_recorded_failed_and_retried_by_the_next_replay(
    settings: Settings, topics: Topics
) -> None:
    big = CODEC.encode(click("x" * 3000)).value
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 1, value=big)])

    refused = oncepipe(
        settings, "replay", "--topic", topics.dlq, "--yes", "--json", check=False,
        ONCEPIPE_PRODUCER_MESSAGE_MAX_BYTES="1024",
    )  # fmt: skip

    assert refused.returncode == 1
    assert json.loads(refused.stdout)["counts"] == {"failed": 1}
    assert [row[3] for row in ledger_rows(settings)] == ["failed"]
    retried = as_json(settings, "replay", "--topic", topics.dlq, "--yes")
    assert retried["counts"] == {"sent": 1}
    assert len(replays_in(settings, topics.source, expected=1)) == 1


@pytest.mark.slow
def test_two_replays_at_once_send_each_dead_letter_once_in_total(
    settings: Settings, topics: Topics
) -> None:
    count = 400
    write(settings, topics.dlq, [oncepipe_letter(topics.source, n) for n in range(count)])
    args = [ONCEPIPE, "dlq", "replay", "--topic", topics.dlq, "--yes", "--json"]
    env = worker_env(settings, ONCEPIPE_LOG_LEVEL="WARNING")
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    counts = [json.loads(out)["counts"] for out, _ in outputs]
    assert sum(c.get("sent", 0) for c in counts) == count
    assert sum(c.get("skipped", 0) for c in counts) == count
    records = replays_in(settings, topics.source, expected=count)
    assert len(records) == count
    assert len({r.headers["replay_of"] for r in records}) == count
    assert [row[3] for row in ledger_rows(settings)] == ["sent"] * count


# -- conventions: names checked, one event id, --limit counts what is left -------------------


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of a refused command (exit 2)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_topic_filter_naming_no_topic_says_so_in_every_command(
    settings: Settings, topics: Topics
) -> None:
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 1)])
    missing = f"no.such.topic.{uuid.uuid4().hex[:8]}"

    for args in (
        ("list", "--topic", missing),
        ("failures", "--topic", missing),
        ("replay", "--topic", missing, "--yes"),
        ("show", f"{missing}.dlq:0:0"),
    ):
        line = usage_error(oncepipe(settings, *args, check=False))
        assert "does not exist" in line, args
        assert missing in line, args
    assert ledger_rows(settings) == []
    assert replays_in(settings, topics.source, expected=0) == []


def test_a_source_topic_without_dead_letter_topic_of_its_own_is_no_error(
    settings: Settings, topics: Topics, make_topic: Callable[..., str]
) -> None:
    quiet = make_topic("events.quiet", partitions=1)
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 1)])

    assert listed(settings, "--topic", quiet) == []


def test_replay_refuses_an_illegal_or_missing_destination_even_in_a_dry_run(
    settings: Settings, topics: Topics
) -> None:
    write(settings, topics.dlq, [oncepipe_letter(topics.source, 1)])

    def refusal(to: str, mode: str) -> str:
        return usage_error(
            oncepipe(settings, "replay", "--topic", topics.dlq, "--to", to, mode, check=False)
        )

    # Every rule of the name is a unit test (test_dlq_topic_names); here: the command refuses.
    for bad, mode in (("bad topic!", "--dry-run"), ("..", "--yes")):
        line = refusal(bad, mode)
        assert f"--to {bad!r} is not a legal topic name" in line
        assert "letters, digits, '.', '_' and '-'" in line
    # A legal name of no topic: the dry run says so too, instead of "would-send".
    assert "no.such.dest do not exist" in refusal("no.such.dest", "--dry-run")
    assert ledger_rows(settings) == []
    assert replays_in(settings, topics.source, expected=0) == []


def headerless_spring_letter(source: str, offset: int) -> Letter:
    """A Spring dead letter of a record that carried no headers: the event id is in the value."""
    key, value, event_id, _ = original("user-5")
    return Letter(
        key,
        value,
        event_id,
        [
            ("kafka_dlt-original-topic", source),
            ("kafka_dlt-original-partition", struct.pack(">i", 0)),
            ("kafka_dlt-original-offset", struct.pack(">q", offset)),
            ("kafka_dlt-exception-fqcn", "java.lang.IllegalStateException"),
            ("kafka_dlt-exception-message", "no handler"),
        ],
    )


def test_show_list_filter_and_ledger_agree_on_an_event_id_read_from_the_value(
    settings: Settings, topics: Topics
) -> None:
    letter = headerless_spring_letter(topics.source, 3)
    write(settings, topics.dlq, [letter])
    ref = f"{topics.dlq}:0:0"

    (item,) = listed(settings, "--topic", topics.dlq)
    shown = as_json(settings, "show", ref)

    assert (item["event_id"], item["event_type"]) == (letter.event_id, "ClickEvent")
    assert (shown["event_id"], shown["event_type"]) == (letter.event_id, "ClickEvent")
    assert [i["ref"] for i in listed(settings, "--event-id", letter.event_id)] == [ref]
    replays = as_json(settings, "replay", "--event-id", letter.event_id, "--yes")["replays"]
    assert isinstance(replays, list)
    assert [(r["outcome"], r["event_id"]) for r in replays] == [("sent", letter.event_id)]
    assert [row[5] for row in ledger_rows(settings)] == [letter.event_id]


def test_replay_limit_counts_dead_letters_not_replayed_yet(
    settings: Settings, topics: Topics
) -> None:
    write(settings, topics.dlq, [oncepipe_letter(topics.source, n) for n in range(5)])

    def refs(data: dict[str, object]) -> list[str]:
        replays = data["replays"]
        assert isinstance(replays, list)
        return [str(r["ref"]) for r in replays]

    first = as_json(settings, "replay", "--topic", topics.dlq, "--limit", "2", "--yes")
    second = as_json(settings, "replay", "--topic", topics.dlq, "--limit", "2", "--yes")
    planned = as_json(settings, "replay", "--topic", topics.dlq, "--limit", "2", "--dry-run")
    forced = as_json(settings, "replay", "--topic", topics.dlq, "--limit", "2", "--dry-run",
                     "--force")  # fmt: skip

    assert (first["counts"], second["counts"]) == ({"sent": 2}, {"sent": 2})
    assert refs(first) == [f"{topics.dlq}:0:{n}" for n in (0, 1)]
    assert refs(second) == [f"{topics.dlq}:0:{n}" for n in (2, 3)]
    assert (planned["counts"], refs(planned)) == ({"would-send": 1}, [f"{topics.dlq}:0:4"])
    # --force replays again what was sent: the limit counts every dead letter then.
    assert refs(forced) == [f"{topics.dlq}:0:{n}" for n in (0, 1)]
    assert len(replays_in(settings, topics.source, expected=4)) == 4
    assert [row[3] for row in ledger_rows(settings)] == ["sent"] * 4
