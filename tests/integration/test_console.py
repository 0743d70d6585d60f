"""``oncepipe console`` over real dead-letter topics: pages, actions, safety (HTTP level).

The browser tests (tests/integration/test_console_browser.py) drive the same app in chromium;
these check each rule through Starlette's test client, faster and one at a time.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from cli.status import snapshot
from console import ConsoleSettings, build, hash_password, sync
from consumers.deadletter_headers import Failure, dead_letter_headers
from consumers.dlq import DeadLetterReader
from oncepipe.kafka import AdminClient, create_producer, create_topics
from oncepipe.settings import Settings
from producers.outbox import event_headers
from schemas import ClickAction, ClickEvent, Codec
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import ONCEPIPE, worker_env

pytestmark = pytest.mark.integration

CODEC = Codec.load()
PASSWORD = "correct horse battery"  # noqa: S105 - a test user's
FAILED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@dataclass(frozen=True)
class Topics:
    source: str
    dlq: str


@pytest.fixture
def topics(make_topic: Callable[..., str], kafka_admin: AdminClient) -> Iterator[Topics]:
    source = make_topic("events.console", partitions=2)
    dlq = f"{source}.dlq"
    create_topics(kafka_admin, {dlq: 2})
    yield Topics(source, dlq)
    for future in kafka_admin.delete_topics([dlq], operation_timeout=30).values():
        future.result(timeout=60)


def click(user: str) -> ClickEvent:
    return ClickEvent(
        event_id=uuid.uuid4(),
        user_id=user,
        item_id="item-1",
        action=ClickAction.CLICK,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        session_id=f"s-{user}",
    )


def write_letters(
    settings: Settings, topics: Topics, messages: list[str], *, user: str = "alice-private"
) -> list[str]:
    """One oncepipe dead letter per message (same user); returns their event ids."""
    producer = create_producer(settings, {"linger.ms": 5})
    ids = []
    for n, message in enumerate(messages):
        encoded = CODEC.encode(click(user))
        headers: list[tuple[str, str | bytes | None]] = [
            *event_headers(encoded),
            ("trace-id", b"\xff\x00raw"),
        ]
        built = dead_letter_headers(
            topic=topics.source,
            partition=n % 2,
            offset=100 + n,
            timestamp_ms=1_767_225_600_000,
            consumer_group="clicks",
            stage="handle",
            failure=Failure("shop.UnknownItemError", message, f"Traceback\n  {user} boom\n"),
            attempts=3,
            first_failure=FAILED_AT - timedelta(seconds=30),
            last_failure=FAILED_AT,
            original_headers=headers,
        )
        producer.produce(
            topics.dlq, key=encoded.key, value=encoded.value, headers=list(built), partition=0
        )
        ids.append(str(encoded.event_id))
    assert producer.flush(30) == 0
    return ids


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    path.write_text(f"# console users\nops:{hash_password(PASSWORD)}\n")
    return path


@pytest.fixture
def make_client(settings: Settings, password_file: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**console: Any) -> TestClient:
        config = ConsoleSettings(password_file=password_file, **console)
        app = build(settings, config, lambda: snapshot(settings, None, 60.0, 5.0))
        client = TestClient(app, follow_redirects=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found[1]


def login(client: TestClient) -> None:
    token = csrf(client.get("/login").text)
    answer = client.post("/login", data={"csrf": token, "username": "ops", "password": PASSWORD})
    assert answer.status_code == 303, answer.text


def ledger(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT dlq_offset, outcome, replayed_by FROM oncepipe.dlq_replays ORDER BY 1"
        ).fetchall()


def audit_rows(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT actor, action, selected, done, detail FROM oncepipe.console_audit ORDER BY id"
        ).fetchall()


def test_pages_group_list_and_show_dead_letters_with_personal_data_redacted(
    settings: Settings, topics: Topics, make_client: Callable[..., TestClient]
) -> None:
    messages = [f"item {n} is unknown" for n in range(3)] + ["price 'x' is negative"]
    ids = write_letters(settings, topics, messages)
    assert sync(settings, [topics.dlq]) == 4
    assert sync(settings, [topics.dlq]) == 0  # from where it stopped
    client = make_client(redact_fields="user_id, session_id")
    assert client.get("/").status_code == 303  # not logged in: to the login page
    login(client)

    overview = client.get("/")
    assert overview.status_code == 200, overview.text
    assert topics.dlq in overview.text
    assert "Content-Security-Policy" in overview.headers

    failures = client.get("/failures", params={"topic": topics.dlq}).text
    rows = re.findall(r'class="group">(\w+)</a></td>\s*<td class="num">(\d+)</td>', failures)
    assert [int(n) for _, n in rows] == [3, 1]
    assert "item &lt;n&gt; is unknown" in failures

    listed = client.get("/letters", params={"fingerprint": rows[0][0]}).text
    assert "3 dead letter(s) selected" in listed
    assert f"{topics.dlq}:0:0" in listed
    assert f"{topics.dlq}:0:3" not in listed

    by_source = client.get("/letters", params={"topic": topics.source, "error": "IS UNKNOWN"}).text
    assert "3 dead letter(s) selected" in by_source  # error text: class or masked message
    negative = client.get("/failures", params={"topic": topics.source, "error": "negative"}).text
    assert re.findall(r'class="group">\w+</a></td>\s*<td class="num">(\d+)<', negative) == ["1"]

    page = client.get(f"/letters/{topics.dlq}:0:0").text
    assert ids[0] in page
    assert f"{topics.source} partition 0 offset 100" in page
    headers = page[page.index("<h2>Headers") : page.index("<h2>Event")]
    assert "trace-id" in headers
    assert "\\xff\\x00raw" in headers, headers
    assert "alice-private" not in page  # user_id: event field, key and trace scrubbed
    assert "[redacted]" in page
    assert "never replayed nor discarded" in page


def test_pages_are_paged_on_the_server(
    settings: Settings, topics: Topics, make_client: Callable[..., TestClient]
) -> None:
    write_letters(settings, topics, [f"item {n} is unknown" for n in range(5)])
    sync(settings, [topics.dlq])
    client = make_client(page_size=2)
    login(client)
    seen: list[str] = []
    url: str | None = f"/letters?topic={topics.dlq}"
    while url:
        html = client.get(url).text
        seen += re.findall(r'class="letter">([^<]+)<', html)
        found = re.search(r'href="([^"]+)" id="next"', html)
        url = found[1].replace("&amp;", "&") if found else None
    assert seen == [f"{topics.dlq}:0:{n}" for n in range(5)]


def test_an_action_is_refused_without_login_without_csrf_and_when_read_only(
    settings: Settings, topics: Topics, make_client: Callable[..., TestClient]
) -> None:
    write_letters(settings, topics, ["item 1 is unknown"])
    ref = f"{topics.dlq}:0:0"
    form = {"kind": "replay", "ref": ref, "confirm": "yes"}
    anonymous = make_client()
    assert anonymous.post("/actions/run", data=form).status_code == 401
    client = make_client()
    login(client)
    refused = client.post("/actions/run", data=form)
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    forged = client.post("/actions/run", data=form | {"csrf": "not-the-token"})
    assert forged.status_code == 403
    read_only = make_client(read_only=True)
    login(read_only)
    page = read_only.get(f"/letters/{ref}").text
    assert "preview-replay" not in page  # no buttons
    answer = read_only.post("/actions/run", data=form | {"csrf": csrf(page)})
    assert answer.status_code == 403
    assert "read-only" in answer.text
    assert ledger(settings) == []
    assert [row[1] for row in audit_rows(settings)] == ["refused", "refused", "refused"]
    assert replay_records(settings, topics, 0) == []


def replay_records(settings: Settings, topics: Topics, expected: int) -> list[Any]:
    return read_topic(settings.kafka_bootstrap_servers, topics.source, expected=expected, settle=1)


def test_a_group_replays_once_after_the_preview_and_the_ledger_names_the_user(
    settings: Settings, topics: Topics, make_client: Callable[..., TestClient]
) -> None:
    write_letters(settings, topics, [f"item {n} is unknown" for n in range(3)] + ["other"])
    sync(settings, [topics.dlq])
    client = make_client()
    login(client)
    failures = client.get("/failures").text
    fingerprint = re.findall(r'class="group">(\w+)</a>', failures)[0]
    selection = {"csrf": csrf(failures), "fingerprint": fingerprint, "topic": topics.dlq}

    preview = client.post("/actions/preview", data=selection | {"kind": "replay"})
    assert preview.status_code == 200, preview.text
    assert "3 dead letter(s): 3 would-send" in preview.text
    assert ledger(settings) == []  # a dry run records nothing
    assert client.post("/actions/run", data=selection | {"kind": "replay"}).status_code == 400

    run = client.post("/actions/run", data=selection | {"kind": "replay", "confirm": "yes"})
    assert run.status_code == 200, run.text
    assert "3 dead letter(s): 3 sent" in run.text
    assert ledger(settings) == [(n, "sent", "ops@console") for n in range(3)]
    assert len(replay_records(settings, topics, 3)) == 3

    again = client.post("/actions/run", data=selection | {"kind": "replay", "confirm": "yes"})
    assert "3 skipped" in again.text  # at most once, as with the CLI
    assert len(replay_records(settings, topics, 3)) == 3

    discard = {"csrf": selection["csrf"], "ref": f"{topics.dlq}:0:3", "kind": "discard"}
    assert "1 would-discard" in client.post("/actions/preview", data=discard).text
    done = client.post("/actions/run", data=discard | {"confirm": "yes"})
    assert "1 discarded" in done.text
    assert ledger(settings)[3] == (3, "discarded", "ops@console")
    actions = [(a, s, d) for _, a, s, d, _ in audit_rows(settings)]
    assert actions == [
        ("preview", 3, 0), ("replay", 3, 3), ("replay", 3, 0), ("preview", 1, 0),
        ("discard", 1, 1),
    ]  # fmt: skip
    assert {row[0] for row in audit_rows(settings)} == {"ops@console"}
    letters = client.get("/letters", params={"topic": topics.dlq}).text
    assert letters.count("sent by ops@console") == 3
    groups = client.get("/failures", params={"topic": topics.dlq}).text
    counts = re.findall(r'class="group">\w+</a></td>\s*<td class="num">(\d+)</td>'
                        r'<td class="num">(\d+)</td>', groups)  # fmt: skip
    assert counts == [("3", "3"), ("1", "0")]  # dead letters, replayed


def test_an_action_takes_the_indexed_dead_letters_and_reads_only_those_records(
    settings: Settings, topics: Topics, make_client: Callable[..., TestClient]
) -> None:
    write_letters(settings, topics, ["item 1 is unknown"] * 3)
    sync(settings, [topics.dlq])
    write_letters(settings, topics, ["item 1 is unknown"] * 2)  # on the topic, not indexed yet
    client = make_client()
    login(client)
    failures = client.get("/failures").text
    fingerprint = re.findall(r'class="group">(\w+)</a>', failures)[0]
    selection = {"csrf": csrf(failures), "fingerprint": fingerprint, "topic": topics.dlq}

    preview = client.post("/actions/preview", data=selection | {"kind": "replay"})
    assert "3 dead letter(s): 3 would-send" in preview.text  # what the pages show, not 5

    scan = DeadLetterReader(settings).fetch_many(
        [f"{topics.dlq}:0:4", f"{topics.dlq}:0:1", f"{topics.dlq}:0:99", f"{topics.dlq}:1:0"]
    )
    assert [x.dlq_offset for x in scan.letters] == [4, 1]  # in the order asked
    assert [r.split(": ")[1] for r in scan.skipped] == ["no committed record at this offset"] * 2


def test_the_console_refuses_to_start_without_a_way_to_authenticate(settings: Settings) -> None:
    result = subprocess.run(
        [ONCEPIPE, "console", "--port", "0"],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--password-file" in result.stderr
    assert "--trusted-header" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_trusted_proxy_header_names_the_user(
    settings: Settings, topics: Topics, make_client: Callable[..., TestClient]
) -> None:
    write_letters(settings, topics, ["item 1 is unknown"])
    sync(settings, [topics.dlq])
    config = ConsoleSettings(trusted_header="X-Forwarded-User")
    client = TestClient(build(settings, config, dict), follow_redirects=False)
    assert client.get("/failures").status_code == 401
    page = client.get("/failures", headers={"X-Forwarded-User": "proxy-user"})
    assert page.status_code == 200
    assert "proxy-user" in page.text
