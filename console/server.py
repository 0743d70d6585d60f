"""Run the console: uvicorn on one pre-bound socket, and a thread keeping the index current.

Public names: ``build``, ``serve``, ``Indexer``.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from console import index
from console.app import Console, Overview, create_app
from console.auth import load_users
from console.settings import ConsoleSettings
from oncepipe.errors import first_line
from oncepipe.logging import get_logger
from oncepipe.settings import Settings

__all__ = ["Indexer", "build", "serve"]

log = get_logger("console")


class Indexer:
    """Reads new dead letters into the index every ``interval`` seconds until stopped."""

    def __init__(self, settings: Settings, interval: float) -> None:
        self._settings = settings
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-index", daemon=True)

    def start(self) -> None:
        """Start indexing in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                added = index.sync(self._settings)
                if added:
                    log.info("dead letters indexed", added=added)
            except Exception as exc:  # noqa: BLE001 - the pages say how far the index got
                log.warning("indexing dead letters failed", error=first_line(exc))
            self._stop.wait(self._interval)


def build(settings: Settings, console: ConsoleSettings, overview: Overview) -> Starlette:
    """The app with its users loaded (a bad password file fails here, before listening)."""
    users = load_users(console.password_file) if console.password_file else {}
    return create_app(Console(settings, console, users, overview))


def serve(
    settings: Settings,
    console: ConsoleSettings,
    overview: Overview,
    *,
    port_file: Path | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT."""
    app = build(settings, console, overview)
    sock = socket.create_server((console.host, console.port))
    port = sock.getsockname()[1]
    if port_file is not None:
        port_file.write_text(f"{port}\n")
    log.info("listening", host=console.host, port=port, read_only=console.read_only)
    indexer = Indexer(settings, console.index_interval_s)
    indexer.start()
    config = uvicorn.Config(
        app, lifespan="off", access_log=False, log_config=None, server_header=False
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        indexer.stop()
