"""The ASGI application: ``POST /v1/events/{type}``, ``.../batch``, ``/openapi.json``, ``/healthz``.

Checks run cheapest first, before any database work: authentication (401), the route (404),
the grant (403), the Idempotency-Key (400), the rate limit (429), the media type (415), the
size (413) and arrival (408) of the body, JSON (400), validation (422). Then one transaction
(``ingest.store.accept``) stores the events and the idempotency record; the blocking psycopg
work runs in Starlette's thread pool.

Public names: ``IngestApp``, ``create_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.bodies import BadBodyError, parse_events
from ingest.clients import Client, Clients
from ingest.metrics import IngestMetrics
from ingest.openapi import KEY_PATTERN, openapi_document
from ingest.ratelimit import RateLimiter
from ingest.settings import IngestSettings
from ingest.store import (
    Accepted,
    InFlight,
    KeyReused,
    Outcome,
    Replayed,
    accept,
    delete_expired,
    derive_event_id,
    enqueue_only,
    request_hash,
)
from oncepipe.logging import get_logger
from schemas import Codec, Event, SchemaError, uuid7

__all__ = ["IngestApp", "create_app"]

T = TypeVar("T")

REPLAY_HEADER = "Idempotent-Replayed"
_KEY = re.compile(KEY_PATTERN)
_JSON = "application/json"


class RefusedError(Exception):
    """An HTTP error answer: status, one-line detail, optional field errors and headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
        return Response(_dumps(body), self.status, self.headers, media_type=_JSON)


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


@dataclass
class IngestApp:
    """The request handlers and what they share."""

    settings: IngestSettings
    clients: Clients
    codec: Codec
    pool: ConnectionPool[psycopg.Connection[Any]]
    models: dict[str, type[Event]]
    limiter: RateLimiter
    metrics: IngestMetrics = field(default_factory=IngestMetrics)

    # -- routes -------------------------------------------------------------------------------
    async def post_one(self, request: Request) -> Response:
        """``POST /v1/events/{event_type}``: one event."""
        return await self._post(request, batch=False)

    async def post_batch(self, request: Request) -> Response:
        """``POST /v1/events/{event_type}/batch``: ``{"events": [...]}``."""
        return await self._post(request, batch=True)

    async def openapi(self, _request: Request) -> Response:
        """The OpenAPI document of the registered types."""
        document = openapi_document(self.models, self.settings.max_batch)
        return Response(_dumps(document), media_type=_JSON)

    async def metrics_page(self, _request: Request) -> Response:
        """Prometheus metrics (text format)."""
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, _request: Request) -> Response:
        """Liveness: the process answers."""
        return Response(b'{"status":"ok"}', media_type=_JSON)

    async def post_naive(self, request: Request) -> Response:
        """``POST /naive/v1/events/{event_type}[/batch]``: no key, fresh ids, no record."""
        return await self._post(request, batch=request.url.path.endswith("/batch"), naive=True)

    # -- the pipeline of checks ---------------------------------------------------------------
    async def _post(self, request: Request, *, batch: bool, naive: bool = False) -> Response:
        log = request.state.log = {}
        try:
            if naive:
                return await self._accept_naive(request, batch, log)
            return await self._accept(request, batch, log)
        except RefusedError as refused:
            log["refused"] = refused.detail
            return refused.response()

    def _route(self, request: Request, log: dict[str, Any]) -> tuple[Client, type[Event]]:
        client = self.clients.authenticate(request.headers.get("authorization"))
        if client is None:
            raise RefusedError(
                401, "a valid API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        log["client"] = client.name
        event_type = str(request.path_params["event_type"])
        model = self.models.get(event_type)
        if model is None:
            raise RefusedError(404, f"no event type {event_type!r}: see /openapi.json")
        log["event_type"] = event_type
        if not client.may_post(event_type):
            raise RefusedError(403, f"client {client.name!r} is not granted {event_type}")
        return client, model

    def _events(
        self, model: type[Event], payload: Any, batch: bool, event_id: Callable[[int], uuid.UUID]
    ) -> list[Event]:
        try:
            return parse_events(
                model, payload, batch=batch, max_batch=self.settings.max_batch, event_id=event_id
            )
        except BadBodyError as bad:
            raise RefusedError(422, bad.detail, bad.errors) from bad

    async def _accept(self, request: Request, batch: bool, log: dict[str, Any]) -> Response:
        client, model = self._route(request, log)
        key = _idempotency_key(request.headers.get("idempotency-key"))
        self._admit(client)
        payload = await self._json_body(request)
        digest = _hash(model.event_type, batch, payload)
        events = self._events(
            model, payload, batch, lambda index: derive_event_id(client.name, key, index)
        )
        log["events"] = len(events)
        outcome = await self._store(client, key, digest, events, model.event_type)
        return self._answer(outcome, log)

    async def _accept_naive(self, request: Request, batch: bool, log: dict[str, Any]) -> Response:
        client, model = self._route(request, log)
        self._admit(client)
        payload = await self._json_body(request)
        _hash(model.event_type, batch, payload)  # the same Unicode check, and the same work
        events = self._events(model, payload, batch, lambda _index: uuid7())
        log["events"] = len(events)
        await self._database(
            enqueue_only,
            self.pool,
            codec=self.codec,
            events=events,
            timeout_s=self.settings.request_timeout_s,
            topic=self.settings.topics.get(model.event_type),
        )
        ids = [str(event.event_id) for event in events]
        return Response(_dumps({"event_type": model.event_type, "event_ids": ids}), 202)

    def _admit(self, client: Client) -> None:
        rate = client.rate_per_s or self.settings.rate_per_s
        burst = client.burst or self.settings.burst
        wait = self.limiter.admit(client.name, rate, burst)
        if wait:
            raise RefusedError(
                429, f"over {rate:g} requests/s for client {client.name!r}; retry later",
                headers={"Retry-After": str(wait)},
            )  # fmt: skip

    async def _json_body(self, request: Request) -> Any:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != _JSON:
            raise RefusedError(415, "send the body as application/json")
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RefusedError(413, f"the body is over {limit} bytes; split it into batches")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise RefusedError(
                            413, f"the body is over {limit} bytes; split it into batches"
                        )
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise RefusedError(408, "the body did not arrive in time") from exc
        except ClientDisconnect as exc:
            raise RefusedError(400, "the client went away before sending the whole body") from exc
        try:
            return json.loads(b"".join(chunks))
        except ValueError as exc:  # JSONDecodeError and bad UTF-8 alike
            raise RefusedError(400, f"the body is not JSON: {exc}") from exc

    async def _store(
        self, client: Client, key: str, digest: bytes, events: list[Event], event_type: str
    ) -> Outcome:
        def respond(stored: Sequence[Event]) -> bytes:
            ids = [str(event.event_id) for event in stored]
            return _dumps({"event_type": event_type, "event_ids": ids})

        return await self._database(
            accept,
            self.pool,
            codec=self.codec,
            client=client.name,
            key=key,
            digest=digest,
            build=lambda: events,
            respond=respond,
            key_ttl_s=self.settings.key_ttl_s,
            timeout_s=self.settings.request_timeout_s,
            topic=self.settings.topics.get(event_type),
        )

    @staticmethod
    async def _database(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking database work in the thread pool; map its failures to answers."""
        try:
            return await run_in_threadpool(work, *args, **kwargs)
        except SchemaError as exc:
            raise RefusedError(422, f"an event cannot be encoded: {exc}") from exc
        except (PoolTimeout, psycopg.OperationalError) as exc:
            # Nothing committed (or, for a lost commit reply, the retry gets the stored response).
            raise RefusedError(
                503, "the database is unavailable or slow; retry with the same Idempotency-Key",
                headers={"Retry-After": "1"},
            ) from exc  # fmt: skip

    @staticmethod
    def _answer(outcome: Outcome, log: dict[str, Any]) -> Response:
        if isinstance(outcome, Accepted):
            return Response(outcome.body, outcome.status, media_type=_JSON)
        if isinstance(outcome, Replayed):
            log["replay"] = True
            return Response(outcome.body, outcome.status, {REPLAY_HEADER: "true"}, media_type=_JSON)
        if isinstance(outcome, InFlight):
            raise RefusedError(
                409, "a request with this Idempotency-Key is in flight; retry later",
                headers={"Retry-After": "1"},
            )  # fmt: skip
        assert isinstance(outcome, KeyReused)  # noqa: S101 - the Outcome union is exhausted
        raise RefusedError(422, "this Idempotency-Key was used with another request body")

    # -- housekeeping -------------------------------------------------------------------------
    async def forget_expired_keys(self) -> None:
        """Delete expired idempotency records every ``cleanup_interval_s``, until cancelled."""
        log = get_logger("ingest")
        while True:
            await asyncio.sleep(self.settings.cleanup_interval_s)
            try:
                deleted = await run_in_threadpool(
                    delete_expired, self.pool, self.settings.key_ttl_s
                )
            except (PoolTimeout, psycopg.Error) as exc:
                log.warning("cannot delete expired idempotency keys", reason=str(exc))
                continue
            if deleted:
                log.info("expired idempotency keys deleted", deleted=deleted)


def _hash(event_type: str, batch: bool, payload: Any) -> bytes:
    try:
        return request_hash(event_type, batch, payload)
    except UnicodeEncodeError as exc:
        raise RefusedError(400, "the body holds text that is not valid Unicode") from exc


def _idempotency_key(raw: str | None) -> str:
    if raw is None:
        raise RefusedError(400, "the Idempotency-Key header is required: a unique id per request")
    # The draft sends the key as a structured-field string ("..."); a bare token is taken too.
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not _KEY.match(key):
        raise RefusedError(400, "the Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


class AccessLog:
    """ASGI middleware: one structured line per request, without payloads or secrets; metrics."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.log = get_logger("ingest.access")
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            seconds = time.perf_counter() - started
            fields = scope.get("state", {}).get("log", {})
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round(seconds * 1000, 2),
                **fields,
            )
            if scope["method"] == "POST":
                self.metrics.observe(
                    status, seconds, client=fields.get("client", ""),
                    event_type=fields.get("event_type", ""), events=fields.get("events", 0),
                    replay=bool(fields.get("replay")),
                )  # fmt: skip


def create_app(handlers: IngestApp) -> Starlette:
    """The Starlette app serving ``handlers``, with the access log; keys expire in background."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        cleaner = asyncio.create_task(handlers.forget_expired_keys())
        try:
            yield
        finally:
            cleaner.cancel()

    naive = [
        Route("/naive/v1/events/{event_type}", handlers.post_naive, methods=["POST"]),
        Route("/naive/v1/events/{event_type}/batch", handlers.post_naive, methods=["POST"]),
    ]
    app = Starlette(
        routes=[
            *(naive if handlers.settings.naive_endpoint else []),
            Route("/v1/events/{event_type}", handlers.post_one, methods=["POST"]),
            Route("/v1/events/{event_type}/batch", handlers.post_batch, methods=["POST"]),
            Route("/openapi.json", handlers.openapi, methods=["GET"]),
            Route("/healthz", handlers.healthz, methods=["GET"]),
            Route("/metrics", handlers.metrics_page, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(AccessLog, metrics=handlers.metrics)
    return app
