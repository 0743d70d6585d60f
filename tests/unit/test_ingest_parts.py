"""The ingest's pure parts: event ids, request hashes, bodies, clients, the rate limit, OpenAPI."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from ingest.bodies import BadBodyError, parse_events
from ingest.clients import hash_key, load_clients, new_key
from ingest.openapi import openapi_document
from ingest.ratelimit import RateLimiter
from ingest.store import derive_event_id, request_hash
from oncepipe.errors import ConfigError
from schemas import ClickEvent

CLICK = {"user_id": "u", "item_id": "i", "action": "click",
         "occurred_at": "2026-01-01T00:00:00Z", "session_id": "s"}  # fmt: skip


def test_event_ids_depend_on_client_key_and_index_only() -> None:
    first = derive_event_id("web", "k", 0)
    assert first == derive_event_id("web", "k", 0)
    assert len({first, derive_event_id("app", "k", 0), derive_event_id("web", "k", 1),
                derive_event_id("web", "k2", 0)}) == 4  # fmt: skip
    assert first.version == 5


def test_the_request_hash_ignores_key_order_and_tells_endpoints_apart() -> None:
    a = request_hash("ClickEvent", False, {"a": 1, "b": [1, 2]})
    assert a == request_hash("ClickEvent", False, {"b": [1, 2], "a": 1})
    assert a != request_hash("ClickEvent", True, {"a": 1, "b": [1, 2]})
    assert a != request_hash("OrderPlaced", False, {"a": 1, "b": [1, 2]})
    with pytest.raises(UnicodeEncodeError):
        request_hash("ClickEvent", False, {"a": "\ud800"})


def test_a_batch_is_validated_with_field_paths_and_ids_by_index() -> None:
    ids = [uuid.uuid4() for _ in range(2)]
    events = parse_events(ClickEvent, {"events": [CLICK, CLICK]}, batch=True, max_batch=5,
                          event_id=ids.__getitem__)  # fmt: skip
    assert [e.event_id for e in events] == ids
    with pytest.raises(BadBodyError) as bad:
        parse_events(ClickEvent, {"events": [CLICK, {**CLICK, "action": "x"}, 3]}, batch=True,
                     max_batch=5, event_id=lambda _: uuid.uuid4())  # fmt: skip
    assert [e["loc"] for e in bad.value.errors] == [
        ["body", "events", 1, "action"],
        ["body", "events", 2],
    ]


@pytest.mark.parametrize(
    "body", [[], {"events": []}, {"events": [CLICK] * 6}, {"events": {}}, {"events": [], "x": 1}]
)
def test_batch_shapes_outside_the_contract_are_refused(body: object) -> None:
    with pytest.raises(BadBodyError):
        parse_events(ClickEvent, body, batch=True, max_batch=5, event_id=lambda _: uuid.uuid4())


def test_clients_authenticate_by_the_hash_of_their_bearer_key(tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "clients.json"
    entry = {"name": "web", "key_sha256": hash_key(key), "event_types": ["ClickEvent"]}
    path.write_text(json.dumps({"clients": [entry]}))
    clients = load_clients(path)
    client = clients.authenticate(f"Bearer {key}")
    assert client is not None
    assert client.name == "web"
    assert client.may_post("ClickEvent")
    assert not client.may_post("OrderPlaced")
    assert clients.authenticate(f"Basic {key}") is None
    assert clients.authenticate("Bearer wrong") is None
    assert clients.authenticate(None) is None
    assert key not in path.read_text()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "not a valid clients file"),
        ('{"clients": [{"name": "a b", "key_sha256": "00", "event_types": ["*"]}]}', "valid"),
        (
            json.dumps(
                {
                    "clients": [
                        {"name": n, "key_sha256": "0" * 64, "event_types": ["*"]}
                        for n in ("a", "a")
                    ]
                }
            ),
            "appears twice",
        ),
        (
            json.dumps(
                {
                    "clients": [
                        {"name": n, "key_sha256": "0" * 64, "event_types": ["*"]}
                        for n in ("a", "b")
                    ]
                }
            ),
            "share one key",
        ),
    ],
)
def test_a_bad_clients_file_is_one_config_error(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "clients.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=why):
        load_clients(path)
    with pytest.raises(ConfigError, match="ONCEPIPE_INGEST_CLIENTS_FILE"):
        load_clients(None)


def test_the_rate_limit_is_a_token_bucket_per_client() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.admit("a", 2.0, 2) for _ in range(3)] == [0, 0, 1]
    assert limiter.admit("b", 2.0, 2) == 0  # another client has its own bucket
    now[0] = 0.5  # one token back at 2/s
    assert limiter.admit("a", 2.0, 2) == 0
    assert limiter.admit("a", 0.1, 2) == 10  # Retry-After rounds up


def test_the_openapi_document_has_both_endpoints_per_type_without_event_id() -> None:
    document = openapi_document({"ClickEvent": ClickEvent}, max_batch=7)
    assert document["openapi"] == "3.1.0"
    one = document["paths"]["/v1/events/ClickEvent"]["post"]
    assert {"202", "400", "401", "403", "409", "413", "422", "429", "503"} <= set(one["responses"])
    assert one["parameters"][0]["name"] == "Idempotency-Key"
    body = document["components"]["schemas"]["ClickEventBody"]
    assert "event_id" not in body["properties"]
    assert "event_id" not in body["required"]
    batch = document["components"]["schemas"]["ClickEventBatch"]
    assert batch["properties"]["events"]["maxItems"] == 7
    json.dumps(document)  # plain JSON all the way down
