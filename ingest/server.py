"""Run the ingest server: uvicorn (uvloop, httptools) on one pre-bound socket.

Why this stack: a request's cost is its PostgreSQL transaction (a commit, a few round trips);
the HTTP layer should add as little as possible on top. uvicorn with uvloop and the httptools
parser (C) keeps per-request overhead at tens of microseconds; Starlette adds routing and
nothing else, where FastAPI would add a second validation pass and a dependency-injection
layer per request, and our OpenAPI document is generated from the registry anyway. granian
parses HTTP in Rust, but with one event loop per process and the database as the bottleneck
its edge does not show here, and uvicorn is the more common deployment.

Public names: ``serve``, ``build``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import FrameType

import psycopg
import uvicorn
from starlette.applications import Starlette

from ingest.app import IngestApp, create_app
from ingest.clients import load_clients
from ingest.ratelimit import RateLimiter
from ingest.settings import IngestSettings
from oncepipe.db import create_pool
from oncepipe.errors import ConfigError
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from schemas import Codec, SchemaStore, known_types, topic_name_problem

__all__ = ["build", "serve"]


class _Server(uvicorn.Server):
    """uvicorn, but a SIGTERM ends in exit 0 after the graceful stop, as for every daemon here.

    uvicorn re-raises the caught signal once stopped, which would make the exit code -15.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def build(settings: Settings, ingest: IngestSettings) -> Starlette:
    """The app with its pool, codec and clients; registers the writer schemas once."""
    clients = load_clients(ingest.clients_file)
    for event_type, topic in ingest.topics.items():
        problem = topic_name_problem(topic)
        if problem is not None:
            raise ConfigError(f"ONCEPIPE_INGEST_TOPICS: {event_type} -> {topic!r}: {problem}")
    url = settings.database_url.get_secret_value()
    codec = Codec.load(lookup=SchemaStore(url).lookup)
    try:
        SchemaStore(url).register(codec)  # consumers can decode whatever this server writes
    except psycopg.errors.InsufficientPrivilege:
        # On its own role (oncepipe_ingest) the server may only read the schema store.
        get_logger("ingest").warning(
            "cannot register the writer schemas on this role; run `oncepipe schema register`"
            " (with the same --import) as the producer or migrator role"
        )
    models = {name: entry.model for name, entry in known_types().items()}
    pool = create_pool(settings, "oncepipe-ingest", min_size=1, max_size=ingest.pool_size)
    return create_app(IngestApp(ingest, clients, codec, pool, models, RateLimiter()))


def serve(settings: Settings, ingest: IngestSettings, *, port_file: Path | None = None) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn finishes the requests in flight)."""
    app = build(settings, ingest)
    sock = socket.create_server((ingest.host, ingest.port))
    port = sock.getsockname()[1]
    if port_file is not None:
        port_file.write_text(f"{port}\n")
    get_logger("ingest").info("listening", host=ingest.host, port=port)
    config = uvicorn.Config(
        app,
        loop="auto",  # uvloop where installed (every platform but Windows), else asyncio's
        http="httptools",
        lifespan="on",
        access_log=False,  # ingest.access logs each request, structured
        log_config=None,  # keep oncepipe's logging configuration
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    _Server(config).run(sockets=[sock])
