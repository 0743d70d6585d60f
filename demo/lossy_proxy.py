"""A TCP proxy in front of an HTTP server that loses a share of the responses.

For each connection it draws once: a lost one relays the request, waits for the server's first
response bytes (the server has answered, so it has committed) and then resets the client's
connection without relaying them. The client sees an error for a request that succeeded:
the network fault behind the duplicated click signals. Clients must open one connection per
request (``Connection: close``) for the draw to be one per request.

Public names: ``LossyProxy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading

__all__ = ["LossyProxy"]

CHUNK = 65536


class LossyProxy:
    """Relay 127.0.0.1:<port> to ``target``, losing ``drop_rate`` of the responses."""

    def __init__(self, target_host: str, target_port: int, drop_rate: float, seed: int = 0) -> None:
        self._target = (target_host, target_port)
        self._drop_rate = drop_rate
        # Reproducible faults, not security: the seed replays the same losses.
        self._random = random.Random(seed)  # noqa: S311
        self.dropped = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="lossy-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        # asyncio holds a connection's handler task weakly once the client has gone: keep it.
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        drop = self._random.random() < self._drop_rate
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        forward = asyncio.create_task(self._pump(client_r, upstream_w))
        self._tasks.add(forward)
        forward.add_done_callback(self._tasks.discard)
        try:
            if drop:
                answer = await upstream_r.read(CHUNK)
                if answer:
                    self.dropped += 1
                client_w.transport.abort()  # a reset, not the answer
            else:
                await self._pump(upstream_r, client_w)
        finally:
            forward.cancel()
            upstream_w.transport.abort()
            with contextlib.suppress(Exception):
                client_w.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while chunk := await reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    def close(self) -> None:
        """Stop accepting and stop the proxy's thread."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
