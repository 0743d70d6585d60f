"""Just enough of the PostgreSQL wire protocol (v3) to find COMMITs and the replies to them.

A proxy feeds ``Conversation`` the bytes of one connection, both ways. It splits them into
messages (type byte + int32 length; the untyped start-up, SSL and GSS requests first), and
follows what a COMMIT looks like in either protocol:

- simple query: ``Q "COMMIT"``, answered by ``CommandComplete "COMMIT"`` then ``ReadyForQuery``;
- extended query, as psycopg sends it alone or in a pipeline: ``Parse`` (maybe named: prepared
  statements are bound by name later, with no SQL in sight), ``Bind``, ``Execute`` ... ``Sync``,
  answered by ``CommandComplete "COMMIT"`` among the other replies before ``ReadyForQuery``.

Replies are matched to requests by counting: each ``Q`` and each ``Sync`` (and the start-up)
is answered by exactly one ``ReadyForQuery``, in order, so the COMMIT executed after the n-th
of them is answered between the n-th and the (n+1)-th ``ReadyForQuery``.

Public names: ``Conversation``, ``ServerReplies``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Conversation", "ServerReplies"]

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_PROTOCOLS = {196608, 196610}  # 3.0, 3.2
_LONGEST = 1 << 30  # the server's own limit on a message
_REMEMBERED = 256  # statements of one transaction kept for ``lose``
_TRANSACTION_ENDS = {"COMMIT", "END", "ROLLBACK", "ABORT", "COMMIT TRANSACTION", "COMMIT WORK"}
_COMMITS = {"COMMIT", "END", "COMMIT TRANSACTION", "COMMIT WORK"}


def _cstring(body: bytes, at: int) -> tuple[str, int]:
    end = body.index(b"\x00", at)
    return body[at:end].decode("utf-8", "replace"), end + 1


def _statement(sql: str) -> str:
    """``sql`` as a bare upper-case command (``commit;`` -> ``COMMIT``)."""
    return " ".join(sql.strip().rstrip(";").split()).upper()


@dataclass
class ServerReplies:
    """What to do with the server's bytes read so far."""

    relay: bytes
    """Complete messages to pass on to the client."""
    lost: bool = False
    """A COMMIT to lose was confirmed: drop the connection, relay nothing more."""
    unspent: list[object] = field(default_factory=list)
    """COMMITs to lose that did not commit (rolled back, failed earlier in their pipeline)."""


@dataclass
class Conversation:
    """One client connection's protocol state, fed from the proxy's two relay threads."""

    client_buffer: bytearray = field(default_factory=bytearray)
    server_buffer: bytearray = field(default_factory=bytearray)
    started: bool = False  # the client's start-up message went by: typed messages from now
    opaque: bool = False  # TLS or GSS encryption accepted: nothing can be read any more
    single_byte_answers: int = 0  # SSL/GSS requests the server has not answered yet
    statements: dict[str, str] = field(default_factory=dict)  # prepared name -> SQL
    portals: dict[str, str] = field(default_factory=dict)  # portal -> its statement's SQL
    transaction: list[str] = field(default_factory=list)  # SQL executed since the last end
    syncs: int = 0  # ReadyForQuery the client asked for so far (start-up, Q, Sync)
    readies: int = 0  # ReadyForQuery the server sent so far
    armed: dict[int, object] = field(default_factory=dict)  # sync groups whose COMMIT reply is lost

    # -- client to server ----------------------------------------------------------------
    def from_client(self, chunk: bytes, lose: Callable[[list[str]], object | None]) -> None:
        """Read the client's ``chunk``; ``lose(sql of the transaction)`` for each COMMIT run.

        ``lose`` returns a token to lose that COMMIT's reply (None: relay it); a token whose
        COMMIT did not commit comes back in ``ServerReplies.unspent``.
        """
        if self.opaque:
            return
        self.client_buffer += chunk
        while not self.opaque and (self._start_up() if not self.started else self._typed(lose)):
            pass

    def _start_up(self) -> bool:
        """Read one untyped message (SSL/GSS request, start-up); False: wait for more bytes."""
        if len(self.client_buffer) < 8:
            return False
        length, code = struct.unpack("!ii", self.client_buffer[:8])
        if not 8 <= length < _LONGEST:
            self._not_postgres()
            return False
        if len(self.client_buffer) < length:
            return False
        del self.client_buffer[:length]
        if code in (_SSL_REQUEST, _GSSENC_REQUEST):
            self.single_byte_answers += 1
        elif code in _PROTOCOLS:
            self.started = True
            self.syncs += 1
        else:  # a cancel request (the connection ends), or not PostgreSQL at all
            self._not_postgres()
        return True

    def _typed(self, lose: Callable[[list[str]], object | None]) -> bool:
        """Read one typed message; False: wait for more bytes."""
        if len(self.client_buffer) < 5:
            return False
        kind = bytes(self.client_buffer[0:1])
        (length,) = struct.unpack("!i", self.client_buffer[1:5])
        if not 4 <= length < _LONGEST:
            self._not_postgres()
            return False
        if len(self.client_buffer) < 1 + length:
            return False
        body = bytes(self.client_buffer[5 : 1 + length])
        del self.client_buffer[: 1 + length]
        self._client_message(kind, body, lose)
        return True

    def _not_postgres(self) -> None:
        """Stop reading: a stream this module does not understand is relayed as it is."""
        self.opaque = True
        self.client_buffer.clear()

    def _client_message(
        self, kind: bytes, body: bytes, lose: Callable[[list[str]], object | None]
    ) -> None:
        if kind == b"Q":
            sql, _ = _cstring(body, 0)
            self._executed(sql, lose)
            self.syncs += 1
        elif kind == b"P":  # Parse: statement name, SQL
            name, at = _cstring(body, 0)
            self.statements[name], _ = _cstring(body, at)
        elif kind == b"B":  # Bind: portal, statement name
            portal, at = _cstring(body, 0)
            name, _ = _cstring(body, at)
            self.portals[portal] = self.statements.get(name, "")
        elif kind == b"E":  # Execute: portal
            portal, _ = _cstring(body, 0)
            self._executed(self.portals.get(portal, ""), lose)
        elif kind == b"S":  # Sync
            self.syncs += 1

    def _executed(self, sql: str, lose: Callable[[list[str]], object | None]) -> None:
        command = _statement(sql)
        token = lose(self.transaction) if command in _COMMITS else None
        if token is not None:
            # Answered after the ReadyForQuery of every Q/Sync sent before it.
            self.armed[self.syncs] = token
        if command in _TRANSACTION_ENDS:
            self.transaction = []
        else:
            # Bounded: an autocommit session never ends a transaction by statement.
            self.transaction = [*self.transaction[-(_REMEMBERED - 1) :], sql]

    # -- server to client ----------------------------------------------------------------
    def from_server(self, chunk: bytes) -> ServerReplies:
        """Read the server's ``chunk``: what to relay, and whether a COMMIT reply is lost."""
        self.server_buffer += chunk
        relay = bytearray()
        unspent: list[object] = []
        if self.opaque:
            return self._opaque(relay, unspent)
        while self.server_buffer:
            if self.single_byte_answers:
                answer = bytes(self.server_buffer[0:1])
                relay += answer
                del self.server_buffer[:1]
                self.single_byte_answers -= 1
                if answer in (b"S", b"G"):  # encryption from here on
                    self.opaque = True
                    return self._opaque(relay, unspent)
                continue
            if len(self.server_buffer) < 5:
                break
            kind = bytes(self.server_buffer[0:1])
            (length,) = struct.unpack("!i", self.server_buffer[1:5])
            if not 4 <= length < _LONGEST:
                self.opaque = True
                return self._opaque(relay, unspent)
            if len(self.server_buffer) < 1 + length:
                break
            message = bytes(self.server_buffer[: 1 + length])
            if kind == b"C" and self.readies in self.armed:
                tag, _ = _cstring(message, 5)
                if tag == "COMMIT":
                    # Committed: the client must never hear of it.
                    del self.armed[self.readies]
                    self.server_buffer.clear()
                    return ServerReplies(bytes(relay), lost=True, unspent=unspent)
            del self.server_buffer[: 1 + length]
            relay += message
            if kind == b"Z":
                if self.readies in self.armed:  # that COMMIT did not commit: nothing to lose
                    unspent.append(self.armed.pop(self.readies))
                self.readies += 1
        return ServerReplies(bytes(relay), unspent=unspent)

    def _opaque(self, relay: bytearray, unspent: list[object]) -> ServerReplies:
        """Relay the rest as it is: nothing can be lost on a stream that cannot be read."""
        relay += self.server_buffer
        self.server_buffer.clear()
        unspent += self.armed.values()
        self.armed.clear()
        return ServerReplies(bytes(relay), unspent=unspent)
