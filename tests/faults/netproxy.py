"""A TCP proxy the fault tests own, to cut, slow and lose replies on one network path.

Clients connect to the proxy instead of the service (for PostgreSQL, the consumer gets a
database URL with the proxy's port); the service sees ordinary connections. Faults:

- ``cut()``: close every open connection at once and refuse new ones until ``restore()``;
- ``delay``: seconds added before each chunk is relayed, both ways;
- ``lose_commit_replies(n)``: for the next ``n`` PostgreSQL ``COMMIT`` statements, forward the
  COMMIT, wait for the server's answer (so the transaction has committed) and then drop the
  connection without relaying it: the client sees an error for a commit that happened.

Public names: ``TcpProxy``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

__all__ = ["TcpProxy"]

# psycopg sends COMMIT as a simple Query message: 'Q', int32 length, "COMMIT", NUL; the server
# confirms a successful commit with CommandComplete 'C' tagged "COMMIT".
COMMIT_QUERY = b"Q\x00\x00\x00\x0bCOMMIT\x00"
COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"
READY_FOR_QUERY = b"Z\x00\x00\x00\x05"


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.commit_in_flight = threading.Event()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Relay 127.0.0.1:<port> to ``target``, with faults on demand (``port`` 0: any free one)."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self._target = (target_host, target_port)
        self._server = socket.create_server(("127.0.0.1", port))
        self.port: int = self._server.getsockname()[1]
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._refusing = False
        self._commit_losses = 0
        self.delay = 0.0
        self.lost_commit_replies = 0
        self.connections = 0
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    # -- faults ---------------------------------------------------------------------------
    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore``."""
        with self._lock:
            self._refusing = True
            links, self._links = list(self._links), set()
        for link in links:
            link.close()

    def restore(self) -> None:
        """Accept connections again."""
        with self._lock:
            self._refusing = False

    def lose_commit_replies(self, count: int) -> None:
        """Lose the server's answer to the next ``count`` COMMITs (after they committed)."""
        with self._lock:
            self._commit_losses += count

    def keep_commit_replies(self) -> None:
        """Cancel the COMMIT reply losses not spent yet."""
        with self._lock:
            self._commit_losses = 0

    def close(self) -> None:
        """Stop accepting and drop everything."""
        self._running = False
        with contextlib.suppress(OSError):
            self._server.close()
        self.cut()

    # -- relaying -------------------------------------------------------------------------
    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.add(link)
                self.connections += 1
            threading.Thread(target=self._client_to_server, args=(link,), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(link,), daemon=True).start()

    def _take_commit_loss(self) -> bool:
        with self._lock:
            if self._commit_losses <= 0:
                return False
            self._commit_losses -= 1
            return True

    def _client_to_server(self, link: _Link) -> None:
        tail = b""
        while not link.closed:
            try:
                chunk = link.client.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            # Keep a short tail so a COMMIT split across two reads is still seen; one byte
            # shorter than a COMMIT, so a COMMIT that ended the last read is not seen twice.
            window = tail + chunk
            if COMMIT_QUERY in window and self._take_commit_loss():
                link.commit_in_flight.set()
            tail = window[-(len(COMMIT_QUERY) - 1) :]
            if self.delay:
                time.sleep(self.delay)
            try:
                link.upstream.sendall(chunk)
            except OSError:
                break
        link.close()

    def _server_to_client(self, link: _Link) -> None:
        held = b""
        while not link.closed:
            try:
                chunk = link.upstream.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            if link.commit_in_flight.is_set():
                # Hold the answers back until the server confirms the COMMIT: then it is
                # durable, and the client never hears of it.
                held += chunk
                if COMMIT_DONE in held:
                    with self._lock:
                        self.lost_commit_replies += 1
                    break
                if READY_FOR_QUERY not in held:
                    continue
                # The COMMIT failed (rolled back): nothing to lose; relay the answer as it is.
                link.commit_in_flight.clear()
                chunk, held = held, b""
            if self.delay:
                time.sleep(self.delay)
            try:
                link.client.sendall(chunk)
            except OSError:
                break
        link.close()
        with self._lock:
            self._links.discard(link)
