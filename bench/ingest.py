"""``oncepipe ingest`` against a bare endpoint writing the same outbox rows, side by side.

Both variants are the same server process and stack (auth, rate limit, validation, ``enqueue``
in one transaction); the bare one is its ``/naive`` endpoint: no Idempotency-Key, no lock, no
idempotency record, a fresh id per request. What the ratio shows is the price of
"a retry can never become a second event". The client (httpx, keep-alive, ``CONCURRENCY``
requests in flight) shares the machine's cores with the server and PostgreSQL.

Cases: single posts and batches of ``BATCH`` (requests/s and events/s), then latency at a fixed
rate (p50/p99, open loop) and the server's memory (VmRSS/VmHWM).

``python -m bench --only ingest`` (``--quick`` for a short run).

Public names: ``run_ingest``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from bench.env import BenchEnv
from bench.measure import Sample, Stopwatch
from bench.results import SuiteResult, Variant, interleave
from ingest import hash_key, new_key

__all__ = ["run_ingest"]

CONCURRENCY = 32
BATCH = 100
KEYED = "ingest (Idempotency-Key)"
BARE = "bare endpoint (no key, no record)"
RESET = "TRUNCATE oncepipe.outbox, oncepipe.ingest_requests"


def _click(n: int) -> dict[str, Any]:
    return {
        "user_id": f"user-{n % 500}",
        "item_id": f"item-{n % 300}",
        "action": "click",
        "occurred_at": "2026-01-01T00:00:00.000Z",
        "session_id": f"session-{n % 1000}",
        "surface": "home",
    }


@dataclass
class _Server:
    url: str
    key: str
    pid: int

    def memory_mb(self) -> dict[str, float]:
        """The server's resident memory now and at its peak."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in {"VmRSS", "VmHWM"}:
                fields[name] = round(int(value.split()[0]) / 1024, 1)
        return fields


@contextmanager
def _server(env: BenchEnv) -> Iterator[_Server]:
    key = new_key()
    with TemporaryDirectory() as folder:
        clients = Path(folder) / "clients.json"
        entry = {"name": "bench", "key_sha256": hash_key(key), "event_types": ["*"]}
        clients.write_text(json.dumps({"clients": [entry]}))
        port_file = Path(folder) / "port"
        environment = {
            **os.environ,
            "ONCEPIPE_DATABASE_URL": env.database_url,
            "ONCEPIPE_INGEST_CLIENTS_FILE": str(clients),
            "ONCEPIPE_INGEST_NAIVE_ENDPOINT": "true",
            "ONCEPIPE_INGEST_TOPICS": json.dumps({"ClickEvent": "bench.ingest"}),
            "ONCEPIPE_INGEST_RATE_PER_S": "1000000",
            "ONCEPIPE_INGEST_BURST": "1000000",
            "ONCEPIPE_INGEST_POOL_SIZE": "8",
            "ONCEPIPE_LOG_LEVEL": "WARNING",
        }
        oncepipe = str(Path(sys.executable).with_name("oncepipe"))
        process = subprocess.Popen(
            [oncepipe, "ingest", "--port", "0", "--port-file", str(port_file)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not (port_file.exists() and port_file.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("oncepipe ingest did not start")
                time.sleep(0.1)
            url = f"http://127.0.0.1:{int(port_file.read_text())}"
            while httpx.get(url + "/healthz").status_code != 200:
                time.sleep(0.1)
            yield _Server(url, key, process.pid)
        finally:
            process.terminate()
            process.wait(30)


def _request(server: _Server, keyed: bool, batch: bool, n: int) -> tuple[str, Any, dict[str, str]]:
    path = ("" if keyed else "/naive") + "/v1/events/ClickEvent" + ("/batch" if batch else "")
    body: Any = {"events": [_click(n * BATCH + i) for i in range(BATCH)]} if batch else _click(n)
    headers = {"Authorization": f"Bearer {server.key}"}
    if keyed:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return server.url + path, body, headers


async def _post(http: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]) -> int:
    """POST, retrying a dropped connection with the same request (and key); the retries."""
    for retries in range(5):
        try:
            answer = await http.post(url, json=body, headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(0.05 * 2**retries)
            continue
        if answer.status_code != 202:
            raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
        return retries
    raise RuntimeError(f"{url}: the connection dropped 5 times")


# Below uvicorn's keep-alive (5 s): the client never reuses a connection the server is closing.
LIMITS = httpx.Limits(max_connections=CONCURRENCY, keepalive_expiry=2.0)


async def _closed_loop(server: _Server, keyed: bool, batch: bool, requests: int) -> int:
    async with httpx.AsyncClient(limits=LIMITS, timeout=60) as http:
        queue = iter(range(requests))
        retried = 0

        async def worker() -> None:
            nonlocal retried
            for n in queue:
                retried += await _post(http, *_request(server, keyed, batch, n))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return retried


def _throughput(
    env: BenchEnv, server: _Server, *, keyed: bool, batch: bool, requests: int
) -> Sample:
    with env.connect(autocommit=True) as conn:
        conn.execute(RESET)
    with Stopwatch() as watch:
        retried = asyncio.run(_closed_loop(server, keyed, batch, requests))
    events = requests * (BATCH if batch else 1)
    return watch.sample(events, extra={"requests_per_s": requests / watch.wall_s,
                                       "retried": retried, **server.memory_mb()})  # fmt: skip


async def _open_loop(server: _Server, keyed: bool, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(limits=LIMITS, timeout=60) as http:

        async def one(n: int) -> None:
            begin = time.perf_counter()
            await _post(http, *_request(server, keyed, False, n))
            latencies.append(time.perf_counter() - begin)

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return latencies


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0),
            "events": len(ordered)}  # fmt: skip


def run_ingest(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Keyed ingest against the bare endpoint: single, batch, latency at a fixed rate, memory."""
    result = SuiteResult("ingest", quick=quick)
    singles = 1000 if quick else 6000
    batches = 20 if quick else 120
    rate, seconds = 100.0, (5.0 if quick else 15.0)
    with _server(env) as server:
        for batch, requests in ((False, singles), (True, batches)):
            variants = [
                Variant(BARE, "same server, /naive endpoint: outbox rows only",
                        partial(_throughput, env, server, keyed=False, batch=batch,
                                requests=requests)),
                Variant(KEYED, "POST /v1/events/ClickEvent[/batch] with a fresh key each",
                        partial(_throughput, env, server, keyed=True, batch=batch,
                                requests=requests)),
            ]  # fmt: skip
            result.add_case(
                f"{'batch of ' + str(BATCH) if batch else 'single'} posts, {CONCURRENCY} in flight",
                variants,
                interleave(runs, variants),
                baseline=BARE,
                params={"requests": requests, "concurrency": CONCURRENCY},
            )
        latency: dict[str, list[dict[str, Any]]] = {BARE: [], KEYED: []}
        for _ in range(runs):
            for name, keyed in ((BARE, False), (KEYED, True)):
                with env.connect(autocommit=True) as conn:
                    conn.execute(RESET)
                figures = _percentiles(asyncio.run(_open_loop(server, keyed, rate, seconds)))
                latency[name].append({**figures, **server.memory_mb()})
        result.add_latency_case(
            f"single posts at {rate:.0f}/s (open loop)", latency,
            params={"rate_per_s": rate, "seconds": seconds},
        )  # fmt: skip
        result.notes.append(
            f"server memory after the run: {server.memory_mb()} MB (VmRSS now, VmHWM peak)"
        )
    return result
