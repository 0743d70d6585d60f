"""Console page times with 1,000,000 dead letters on one topic (quick: 20,000).

Setup: a dead-letter topic (3 partitions) filled with oncepipe dead letters of click events,
with 25 error messages (25 failure groups of different sizes), then indexed once by
``console.sync`` (timed, reported as ``index_s`` and dead letters/s: what a console started on
a full topic does once, in the background). Nothing of a topic is read by the timed pages but
the one dead letter's page, which reads that record.

Timed: each page through the real app (Starlette's test client, logged in), RUNS times,
interleaved; reported in the suite's notes as milliseconds (median, min, max, every run):

- ``overview``: ``oncepipe status``'s snapshot (PostgreSQL and broker), parked keys and the
  index progress;
- ``failures``: every failure group of the topic (a GROUP BY over the index);
- ``letters first page`` / ``letters deep page`` (keyset, past the 900,000th) of the topic;
- ``letters of one group``: a filter by fingerprint, with its count;
- ``letters by error text``: a substring filter (ILIKE over the index);
- ``one dead letter``: the record read from Kafka, decoded, redacted, with its ledger row.

``python -m bench.console [--quick]`` runs this suite alone (as ``python -m bench --only
console``).

Public names: ``run_console``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from bench.env import BenchEnv
from bench.results import SuiteResult
from cli.status import snapshot
from console import ConsoleSettings, build, hash_password, sync
from consumers.deadletter_headers import Failure, dead_letter_headers
from oncepipe.kafka import create_admin, create_producer, create_topics
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings
from producers.outbox import event_headers
from schemas import ClickAction, ClickEvent, Codec

__all__ = ["run_console"]

GROUPS = 25
PARTITIONS = 3
RUNS = 5
PASSWORD = "bench-password"  # noqa: S105 - a throwaway user of the bench database


def _write(env: BenchEnv, source: str, dlq: str, count: int) -> None:
    codec = Codec.load()
    encoded = codec.encode(
        ClickEvent(
            event_id=uuid.uuid4(), user_id="u-1", item_id="sku-1", action=ClickAction.CLICK,
            occurred_at=datetime.now(UTC), session_id="s",
        )
    )  # fmt: skip
    now = datetime.now(UTC)
    headers = []
    for g in range(GROUPS):
        failure = Failure(f"shop.errors.Error{g}", f"rule {g} refused item 42", "Traceback")
        headers.append(
            [*dead_letter_headers(
                topic=source, partition=0, offset=0, timestamp_ms=None, consumer_group="bench",
                stage="handle", failure=failure, attempts=1, first_failure=now,
                original_headers=event_headers(encoded),
            )]
        )  # fmt: skip
    producer = create_producer(env.settings, {"linger.ms": 50, "batch.size": 1_000_000})
    for n in range(count):
        # Group sizes differ: group g gets about 1/(g+1) of its share more.
        group = (n * n) % GROUPS if n % 3 else n % GROUPS
        while True:
            try:
                producer.produce(dlq, key=encoded.key, value=encoded.value,
                                 headers=headers[group], partition=n % PARTITIONS)  # fmt: skip
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(300):
        raise RuntimeError("dead letters were not all written within 300 s")


def _client(env: BenchEnv, users: Path) -> TestClient:
    users.write_text(f"bench:{hash_password(PASSWORD)}\n")
    config = ConsoleSettings(password_file=users, redact_fields="user_id")
    app = build(env.settings, config, lambda: snapshot(env.settings, None, 60.0, 5.0))
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    if token is None:
        raise RuntimeError("no CSRF token on the login page")
    answer = client.post(
        "/login", data={"csrf": token[1], "username": "bench", "password": PASSWORD}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"login failed: {answer.status_code}")
    return client


def _pages(client: TestClient, dlq: str, count: int) -> dict[str, str]:
    failures = client.get("/failures", params={"topic": dlq}).text
    fingerprint = re.findall(r'class="group">(\w+)</a>', failures)[-1]
    deep = max(0, count // PARTITIONS * 9 // 10)
    return {
        "overview": "/",
        "failures": f"/failures?topic={dlq}",
        "letters first page": f"/letters?topic={dlq}",
        "letters deep page": f"/letters?topic={dlq}&after={dlq}:1:{deep}",
        "letters of one group": f"/letters?topic={dlq}&fingerprint={fingerprint}",
        "letters by error text": f"/letters?topic={dlq}&error=Error17",
        "one dead letter": f"/letters/{dlq}:2:{deep}",
    }


def run_console(env: BenchEnv, *, quick: bool) -> SuiteResult:
    """Index COUNT dead letters, then time each page."""
    result = SuiteResult("console", quick=quick)
    count = 20_000 if quick else 1_000_000
    source = env.create_topic("console")
    dlq = f"{source}.dlq"
    create_topics(create_admin(env.settings), {dlq: PARTITIONS})
    try:
        began = time.monotonic()
        _write(env, source, dlq, count)
        written_s = time.monotonic() - began
        began = time.monotonic()
        indexed = sync(env.settings, [dlq])
        index_s = time.monotonic() - began
        if indexed != count:
            raise RuntimeError(f"indexed {indexed} dead letters, wrote {count}")
        with tempfile.TemporaryDirectory() as tmp, _client(env, Path(tmp) / "users") as client:
            pages = _pages(client, dlq, count)
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in pages}
            for _ in range(RUNS):
                for name, url in pages.items():
                    began = time.monotonic()
                    answer = client.get(url)
                    took = (time.monotonic() - began) * 1000
                    if answer.status_code != 200:
                        raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:200]}")
                    runs[name].append({"page_ms": round(took, 1)})
    finally:
        with env.connect(autocommit=True) as conn:
            for table in ("dlq_index", "dlq_index_progress"):
                conn.execute(f"DELETE FROM oncepipe.{table} WHERE dlq_topic = %s", (dlq,))
        env.delete_topic(dlq)
        env.delete_topic(source)
    params = {
        "dead_letters": count,
        "failure_groups": GROUPS,
        "partitions": PARTITIONS,
        "runs": RUNS,
        "write_s": round(written_s, 1),
        "index_s": round(index_s, 1),
        "indexed_per_s": round(count / index_s),
    }
    result.notes += page_notes(params, {n: [s["page_ms"] for s in v] for n, v in runs.items()})
    for line in result.notes:
        print(f"console: {line}", file=sys.stderr)
    return result


def page_notes(params: dict[str, Any], times: dict[str, list[float]]) -> list[str]:
    """The suite's report: its parameters, then a table of page times (ms) per page."""
    lines = [
        ", ".join(f"{k}={v}" for k, v in params.items()),
        "",
        "| page | median ms | min ms | max ms | every run (ms) |",
        "|---|--:|--:|--:|---|",
    ]
    for name, ms in times.items():
        runs = ", ".join(f"{t:.1f}" for t in ms)
        lines.append(
            f"| {name} | {statistics.median(ms):.1f} | {min(ms):.1f} | {max(ms):.1f} | {runs} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.console [--quick]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--quick", action="store_true", help="20,000 dead letters")
    args = parser.parse_args(argv)
    configure_logging(load_settings(log_level="WARNING"))
    run_console(BenchEnv(), quick=args.quick).write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
