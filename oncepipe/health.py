"""A worker's HTTP endpoint: ``/metrics``, ``/livez`` and ``/readyz``, on its own threads.

The server runs in daemon threads (one per request), so neither a slow scrape nor a probe
waiting for PostgreSQL ever blocks the worker's loop, and a loop that hangs still gets its
``/livez`` answered (with 503).

Public names: ``Probe``, ``Endpoint``, ``serve``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["Endpoint", "Probe", "serve"]

Probe = Callable[[], tuple[bool, str]]
"""A check: (healthy, one line saying why)."""


class Endpoint:
    """The running server; ``close`` stops it."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The port it listens on (useful when asked for port 0)."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve(
    host: str, port: int, registry: CollectorRegistry, *, livez: Probe, readyz: Probe
) -> Endpoint:
    """Serve the registry and the two probes on ``host:port`` from daemon threads."""
    routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
        "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
        "/livez": lambda: _answer(livez),
        "/readyz": lambda: _answer(readyz),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                status, kind, body = (
                    404,
                    "text/plain",
                    b"not found: try /metrics, /livez, /readyz\n",
                )
            else:
                status, kind, body = route()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Probes every few seconds would flood the worker's log: say nothing."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="oncepipe-metrics", daemon=True)
    thread.start()
    return Endpoint(server, thread)


def _answer(probe: Probe) -> tuple[int, str, bytes]:
    try:
        ok, why = probe()
    except Exception as exc:  # noqa: BLE001 - a probe that fails is an unhealthy answer
        ok, why = False, f"probe failed: {type(exc).__name__}: {exc}"
    return (
        (200 if ok else 503),
        "text/plain; charset=utf-8",
        f"{'ok' if ok else 'fail'}: {why}\n".encode(),
    )
