"""A TCP proxy the fault tests own, to cut, slow and lose replies on one network path.

Clients connect to the proxy instead of the service (for PostgreSQL, the consumer gets a
database URL with the proxy's port); the service sees ordinary connections. Faults:

- ``cut()``: close every open connection at once and refuse new ones until ``restore()``;
- ``delay``: seconds added before each chunk is relayed, both ways;
- ``lose_commit_replies(n, after=...)``: for the next ``n`` PostgreSQL COMMITs (simple query,
  or extended protocol alone or in a pipeline: ``tests.faults.pgwire``), forward the COMMIT,
  relay the replies before the server's confirmation and then drop the connection instead of
  relaying it: the client sees an error for a commit that happened. With ``after``, only
  COMMITs of a transaction that ran SQL containing that text count (``consumer_offsets_move``:
  a consumer's batch). A COMMIT that rolls back (or never runs, its pipeline failed before
  it) is relayed as it is and does not use up a loss.

Public names: ``TcpProxy``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

from tests.faults.pgwire import Conversation

__all__ = ["TcpProxy"]


@dataclass(frozen=True, eq=False)
class _Loss:
    """One COMMIT reply to lose; ``after``: only in a transaction that ran SQL with this text."""

    after: str | None


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.conversation = Conversation()
        self.lock = threading.Lock()  # the two relay threads share the conversation
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
        self._commit_losses: list[_Loss] = []
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

    def lose_commit_replies(self, count: int, after: str | None = None) -> None:
        """Lose the server's answer to the next ``count`` COMMITs (after they committed).

        ``after``: only COMMITs of transactions that ran SQL containing this text.
        """
        with self._lock:
            self._commit_losses += [_Loss(after) for _ in range(count)]

    def keep_commit_replies(self) -> None:
        """Cancel the COMMIT reply losses not spent yet."""
        with self._lock:
            self._commit_losses = []

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

    def _take_commit_loss(self, transaction: list[str]) -> _Loss | None:
        with self._lock:
            for at, loss in enumerate(self._commit_losses):
                if loss.after is None or any(loss.after in sql for sql in transaction):
                    return self._commit_losses.pop(at)
            return None

    def _give_back(self, unspent: list[object]) -> None:
        """Losses taken by COMMITs that did not commit wait for the next ones."""
        if unspent:
            with self._lock:
                self._commit_losses[:0] = [u for u in unspent if isinstance(u, _Loss)]

    def _client_to_server(self, link: _Link) -> None:
        while not link.closed:
            try:
                chunk = link.client.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            # Read before relaying: a COMMIT to lose is marked before the server can answer it.
            with link.lock:
                link.conversation.from_client(chunk, self._take_commit_loss)
            if self.delay:
                time.sleep(self.delay)
            try:
                link.upstream.sendall(chunk)
            except OSError:
                break
        link.close()

    def _server_to_client(self, link: _Link) -> None:
        while not link.closed:
            try:
                chunk = link.upstream.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            with link.lock:
                replies = link.conversation.from_server(chunk)
            self._give_back(replies.unspent)
            if self.delay:
                time.sleep(self.delay)
            try:
                link.client.sendall(replies.relay)
            except OSError:
                break
            if replies.lost:
                # Committed, and the client never hears of it.
                with self._lock:
                    self.lost_commit_replies += 1
                break
        link.close()
        with self._lock:
            self._links.discard(link)
