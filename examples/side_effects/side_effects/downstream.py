"""An idempotent downstream: acts once per ``Idempotency-Key``, answers every call the same.

``python -m side_effects.downstream --port 8088`` runs it; ``Downstream`` runs it in a thread
(the example's test). ``effects`` holds each key once, ``calls`` counts every call per key.

Public names: ``Downstream``.
"""

from __future__ import annotations

import argparse
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Downstream"]


class Downstream:
    """A local HTTP server recording what each idempotency key asked for, once."""

    def __init__(self, port: int = 0) -> None:
        self.effects: dict[str, bytes] = {}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to POST."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/receipts"

    def start(self) -> Downstream:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _record(self, key: str, body: bytes) -> int:
        with self._lock:
            self.calls[key] += 1
            if key in self.effects:
                return 200  # already done: the same answer, no second effect
            self.effects[key] = body
            return 201

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        downstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                key = self.headers.get("Idempotency-Key")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = 400 if not key else downstream._record(key, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        return Handler


def main() -> None:
    """Run the downstream in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m side_effects.downstream")
    parser.add_argument("--port", type=int, default=8088)
    downstream = Downstream(parser.parse_args().port)
    print(f"listening on {downstream.url}", flush=True)
    try:
        downstream._server.serve_forever()
    except KeyboardInterrupt:
        downstream.stop()


if __name__ == "__main__":
    main()
