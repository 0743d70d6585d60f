"""``oncepipe ingest`` against real PostgreSQL: Idempotency-Key semantics and its protections.

Each test starts the real server process on a fresh database and talks HTTP to it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from ingest import REPLAY_HEADER, derive_event_id
from oncepipe.settings import Settings
from tests.fixtures.ingest import IngestServer, click
from tests.fixtures.relay import ONCEPIPE, worker_env

pytestmark = pytest.mark.integration

ONE = "/v1/events/ClickEvent"
BATCH = "/v1/events/ClickEvent/batch"


def test_a_retry_gets_the_stored_response_and_adds_no_event(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    first = server.post(ONE, click(), key="k-1")
    assert first.status_code == 202, first.text
    (event_id,) = first.json()["event_ids"]
    assert event_id == str(derive_event_id("web", "k-1", 0))
    assert REPLAY_HEADER.lower() not in first.headers

    retry = server.post(ONE, click(), key="k-1")
    assert retry.status_code == 202
    assert retry.headers[REPLAY_HEADER] == "true"
    assert retry.content == first.content
    assert server.outbox() == [("events.click", event_id)]
    assert server.records() == 1


def test_a_batch_stores_its_events_and_record_in_one_transaction(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    events = [click(user_id=f"user-{n}") for n in range(5)]
    answer = server.post(BATCH, {"events": events}, key="batch-1")
    assert answer.status_code == 202, answer.text
    ids = [str(derive_event_id("web", "batch-1", n)) for n in range(5)]
    assert answer.json() == {"event_type": "ClickEvent", "event_ids": ids}
    assert [dedupe for _, dedupe in server.outbox()] == ids
    assert server.post(BATCH, {"events": events}, key="batch-1").headers[REPLAY_HEADER] == "true"
    assert len(server.outbox()) == 5


def test_the_client_is_the_dedupe_namespace(ingest_server: Callable[..., IngestServer]) -> None:
    server = ingest_server(clients=[("web", ["*"]), ("app", ["ClickEvent"])])
    web = server.post(ONE, click(), key="same", client="web").json()["event_ids"]
    app = server.post(ONE, click(), key="same", client="app").json()["event_ids"]
    assert web != app  # the same key from two clients is two events
    assert len(server.outbox()) == 2


def test_a_client_cannot_choose_an_event_id(ingest_server: Callable[..., IngestServer]) -> None:
    server = ingest_server()
    answer = server.post(ONE, click(event_id=str(uuid.uuid4())), key="k")
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "event_id"]
    assert server.outbox() == []


def test_the_same_key_with_another_body_is_refused(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    assert server.post(ONE, click(), key="k").status_code == 202
    other = server.post(ONE, click(item_id="item-2"), key="k")
    assert other.status_code == 422
    assert "another request body" in other.json()["detail"]
    assert len(server.outbox()) == 1


@pytest.mark.parametrize(
    ("key", "why"), [(None, "is required"), ("", "visible ASCII"), ("a b", "visible ASCII")]
)
def test_a_missing_or_malformed_key_is_400(
    ingest_server: Callable[..., IngestServer], key: str | None, why: str
) -> None:
    server = ingest_server()
    headers = {} if key is None else {"Idempotency-Key": key}
    answer = server.post(ONE, click(), headers=headers)
    assert answer.status_code == 400
    assert why in answer.json()["detail"]
    assert server.outbox() == []


def test_invalid_events_get_422_with_field_paths(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    bad = server.post(BATCH, {"events": [click(), click(user_id="", action="dance")]}, key="b")
    assert bad.status_code == 422
    locs = [error["loc"] for error in bad.json()["errors"]]
    assert locs == [["body", "events", 1, "user_id"], ["body", "events", 1, "action"]]
    assert "dance" not in bad.text  # no submitted value echoed back
    one = server.post(ONE, click(occurred_at="yesterday"), key="o")
    assert [e["loc"] for e in one.json()["errors"]] == [["body", "occurred_at"]]
    assert server.outbox() == []
    # Nothing was stored under the keys: the corrected requests are accepted.
    assert server.post(ONE, click(), key="o").status_code == 202


def test_a_request_in_flight_makes_a_retry_get_409(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    # Hold the request's lock as a first request in its transaction would.
    with psycopg.connect(server.database_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x696E67, "web\nk"))
        busy = server.post(ONE, click(), key="k")
        assert busy.status_code == 409
        assert busy.headers["Retry-After"] == "1"
    assert server.post(ONE, click(), key="k").status_code == 202


def test_an_expired_key_starts_afresh_and_its_retry_is_still_one_event(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server(ONCEPIPE_INGEST_KEY_TTL_S="3600")
    first = server.post(ONE, click(), key="k").json()
    with psycopg.connect(server.database_url) as conn:
        conn.execute("UPDATE oncepipe.ingest_requests SET created_at = now() - interval '2 hours'")
    again = server.post(ONE, click(), key="k")
    assert again.status_code == 202
    assert REPLAY_HEADER not in again.headers  # not a replay: the record had expired
    assert again.json() == first  # the same derived id, which the outbox absorbed
    assert len(server.outbox()) == 1
    assert server.post(ONE, click(item_id="other"), key="k").status_code == 422


def test_fifty_concurrent_requests_with_one_key_make_one_event(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server(ONCEPIPE_INGEST_POOL_SIZE="16")
    start = threading.Barrier(50)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(timeout=60) as http:
            start.wait()
            answer = server.post(ONE, click(), key="one-key", http=http)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=post) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == 50
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {202, 409}, statuses
    accepted = [a for a in answers if a.status_code == 202]
    originals = [a for a in accepted if REPLAY_HEADER not in a.headers]
    assert len(originals) == 1
    assert {a.content for a in accepted} == {originals[0].content}
    assert server.outbox() == [("events.click", str(derive_event_id("web", "one-key", 0)))]
    assert server.records() == 1


def test_unknown_keys_and_ungranted_types_are_refused(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server(clients=[("web", ["OrderPlaced"])])
    anonymous = httpx.post(server.url + ONE, json=click(), headers={"Idempotency-Key": "k"})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = httpx.post(
        server.url + ONE,
        json=click(),
        headers={"Idempotency-Key": "k", "Authorization": "Bearer x"},
    )
    assert wrong.status_code == 401
    assert server.post(ONE, click(), key="k").status_code == 403
    assert server.post("/v1/events/NoSuchType", click(), key="k").status_code == 404
    assert server.outbox() == []


def test_bodies_over_the_limit_get_413(ingest_server: Callable[..., IngestServer]) -> None:
    server = ingest_server(ONCEPIPE_INGEST_MAX_BODY_BYTES="2048")
    big = {"events": [click(user_id=f"user-{n}") for n in range(40)]}
    answer = server.post(BATCH, big, key="big")
    assert answer.status_code == 413
    assert server.post(ONE, click(), key="small").status_code == 202
    # Chunked (no Content-Length): counted while it arrives.
    chunks = iter([b'{"events": [', b" " * 4096, b"]}"])
    streamed = httpx.post(
        server.url + BATCH,
        content=chunks,
        headers={
            "Authorization": f"Bearer {server.keys['web']}",
            "Idempotency-Key": "chunked",
            "Content-Type": "application/json",
        },
    )
    assert streamed.status_code == 413


def test_a_client_over_its_rate_gets_429_with_retry_after(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server(ONCEPIPE_INGEST_RATE_PER_S="0.01", ONCEPIPE_INGEST_BURST="2")
    assert server.post(ONE, click(), key="a").status_code == 202
    assert server.post(ONE, click(), key="b").status_code == 202
    limited = server.post(ONE, click(), key="c")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert len(server.outbox()) == 2


def test_other_media_types_and_broken_json_are_refused(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    auth = {"Authorization": f"Bearer {server.keys['web']}", "Idempotency-Key": "k"}
    text = httpx.post(
        server.url + ONE, content=b"x", headers={**auth, "Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    broken = httpx.post(
        server.url + ONE, content=b"{", headers={**auth, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    surrogate = httpx.post(  # valid JSON ("\ud800" escaped), not valid Unicode
        server.url + ONE,
        content=json.dumps(click(user_id="\ud800")).encode(),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 400
    assert server.outbox() == []


def test_access_logs_hold_no_payload_and_no_secret(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    secret_user = f"user-{uuid.uuid4().hex}"
    assert server.post(ONE, click(user_id=secret_user), key="logged-key").status_code == 202
    assert server.post(ONE, click(user_id=""), key="bad").status_code == 422
    server.child.terminate()
    assert server.child.wait(30) == 0
    text = server.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [
        line
        for line in lines
        if line.get("component") == "ingest.access" and line["method"] == "POST"
    ]
    assert [(a["status"], a["client"], a["event_type"]) for a in access] == [
        (202, "web", "ClickEvent"),
        (422, "web", "ClickEvent"),
    ]
    assert secret_user not in text
    assert "logged-key" not in text
    assert server.keys["web"] not in text


def test_types_of_a_user_module_are_served_and_published(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server(args=["--import", "orders_contract"])
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/events/ClickEvent", "/v1/events/OrderPlaced/batch"} <= set(spec["paths"])
    assert "event_id" not in spec["components"]["schemas"]["OrderPlacedBody"]["properties"]
    order = {"order_id": str(uuid.uuid4()), "customer_id": "c-1", "amount_cents": 1250,
             "placed_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    answer = server.post("/v1/events/OrderPlaced", order, key="order-1")
    assert answer.status_code == 202, answer.text
    assert server.outbox()[0][0] == "events.order_placed"


def test_metrics_count_requests_replays_and_events(
    ingest_server: Callable[..., IngestServer],
) -> None:
    server = ingest_server()
    assert server.post(BATCH, {"events": [click(), click()]}, key="m").status_code == 202
    assert server.post(BATCH, {"events": [click(), click()]}, key="m").status_code == 202
    assert server.post(ONE, click(user_id=""), key="bad").status_code == 422
    page = httpx.get(server.url + "/metrics")
    assert page.status_code == 200
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in page.text.splitlines()
        if line.startswith("oncepipe_ingest_")
    }
    assert samples['oncepipe_ingest_requests_total{client="web",status="202"}'] == 2
    assert samples['oncepipe_ingest_requests_total{client="web",status="422"}'] == 1
    assert samples['oncepipe_ingest_replays_total{client="web"}'] == 1
    assert samples['oncepipe_ingest_events_total{client="web",event_type="ClickEvent"}'] == 2
    assert samples["oncepipe_ingest_request_duration_seconds_count"] == 3


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "no clients: set ONCEPIPE_INGEST_CLIENTS_FILE"),
        ({"ONCEPIPE_INGEST_CLIENTS_FILE": "/nonexistent/clients.json"}, "cannot read it"),
        ({"ONCEPIPE_INGEST_TOPICS": '{"ClickEvent": "bad topic!"}'}, "ONCEPIPE_INGEST_TOPICS"),
    ],
)
def test_a_bad_configuration_is_one_line_and_exit_2(
    settings: Settings, tmp_path: Path, env: dict[str, str], says: str
) -> None:
    clients = tmp_path / "clients.json"
    clients.write_text('{"clients": []}')
    base = {k: v for k, v in worker_env(settings).items() if not k.startswith("ONCEPIPE_INGEST")}
    if "ONCEPIPE_INGEST_TOPICS" in env:
        base["ONCEPIPE_INGEST_CLIENTS_FILE"] = str(clients)
    run = subprocess.run(
        [ONCEPIPE, "ingest", "--port", "0"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert says in line
