"""Back-pressure: the broker stopped while an upstream keeps writing, then the drain.

``.venv/bin/python -m infra run -- .venv/bin/python -m bench.backpressure [--rows 40000]
[--rate 2000]`` (the native services of ``infra``: it stops and starts their broker).

1. A real ``oncepipe relay`` process publishes a fresh topic from the bench database's outbox.
2. The broker is stopped; an upstream enqueues ``--rows`` rows (``--value-bytes`` each, 200
   keys) at ``--rate`` rows/s in transactions of 500. Every few seconds: pending rows, the
   outbox's size on disk (table + indexes + TOAST), live and dead tuples, autovacuum runs, the
   relay's CPU seconds.
3. The broker is started again: time to the first published row (the relay holds partitions
   whose rows were not acknowledged, with a backoff up to ``ONCEPIPE_RELAY_RETRY_BACKOFF_MAX_S``),
   the drain's duration and rate, and the order: the topic is read back and each key's rows must
   arrive in the order they were written.
4. After the drain: the size again, and after a plain ``VACUUM`` (published rows stay until the
   relay's retention deletes them; their space is then reused, not returned to the disk).

Prints one JSON object (the figures); nothing is written elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.env import BenchEnv
from infra.services import all_services
from oncepipe.kafka import create_consumer
from producers.outbox import enqueue_record

ONCEPIPE = str(Path(sys.executable).with_name("oncepipe"))
KEYS = 200
CHUNK = 500
SAMPLE_S = 3.0
_STATS = """
SELECT pg_total_relation_size('oncepipe.outbox'),
       (SELECT count(*) FROM oncepipe.outbox WHERE published_at IS NULL),
       n_live_tup, n_dead_tup, autovacuum_count
FROM pg_stat_user_tables WHERE relid = 'oncepipe.outbox'::regclass
"""


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sample(conn: psycopg.Connection[Any], started: float, relay_pid: int) -> dict[str, Any]:
    size, pending, live, dead, autovacuums = conn.execute(_STATS).fetchone() or (0, 0, 0, 0, 0)
    return {
        "t_s": round(time.monotonic() - started, 1),
        "outbox_mb": round(size / 1e6, 2),
        "pending": pending,
        "live": live,
        "dead": dead,
        "autovacuums": autovacuums,
        "relay_cpu_s": round(_cpu_s(relay_pid), 2),
    }


def _write(env: BenchEnv, topic: str, rows: int, rate: float, value_bytes: int) -> float:
    """Enqueue ``rows`` rows at ``rate`` rows/s; returns the seconds it took."""
    started = time.monotonic()
    filler = b"x" * max(0, value_bytes - 12)
    with env.connect() as conn:
        for first in range(0, rows, CHUNK):
            with conn.transaction():
                for seq in range(first, min(first + CHUNK, rows)):
                    enqueue_record(
                        conn, topic, f"e{seq}", key=f"k{seq % KEYS}".encode(),
                        value=b"%012d" % seq + filler, headers=[],
                    )  # fmt: skip
            ahead = (first + CHUNK) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    return time.monotonic() - started


def _order_problems(env: BenchEnv, topic: str, rows: int) -> tuple[int, int]:
    """(records read, keys whose rows arrived out of written order)."""
    consumer = create_consumer(
        env.settings, f"bench-backpressure-{topic}", {"auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    last: dict[bytes, int] = {}
    unordered: set[bytes] = set()
    seen = 0
    deadline = time.monotonic() + 120
    try:
        while seen < rows and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                if message.error() is not None:
                    continue
                key, value = message.key() or b"", message.value() or b""
                seq = int(value[:12])
                if seq <= last.get(key, -1):
                    unordered.add(key)
                last[key] = seq
                seen += 1
    finally:
        consumer.close()
    return seen, len(unordered)


def _outage(
    env: BenchEnv, conn: psycopg.Connection[Any], relay: subprocess.Popen[bytes], *,
    topic: str, figures: dict[str, Any], samples: list[dict[str, Any]], started: float,
) -> None:  # fmt: skip
    """The upstream writes while a sampler watches the outbox; the broker is down meanwhile."""
    done = threading.Event()

    # Sampled from a thread of its own: sampling between chunks would skew the rate.
    def sampler() -> None:
        with env.connect(autocommit=True) as probe:
            while not done.wait(SAMPLE_S):
                samples.append({"phase": "down", **_sample(probe, started, relay.pid)})

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    figures["write_s"] = round(
        _write(env, topic, figures["rows"], figures["rate"], figures["value_bytes"]), 1
    )
    done.set()
    thread.join()
    figures["at_broker_start"] = _sample(conn, started, relay.pid)
    cpu_down = figures["at_broker_start"]["relay_cpu_s"] - figures["before"]["relay_cpu_s"]
    figures["relay_cpu_while_down_s"] = round(cpu_down, 2)


def _drain(
    conn: psycopg.Connection[Any], relay: subprocess.Popen[bytes], figures: dict[str, Any],
    samples: list[dict[str, Any]], started: float,
) -> None:  # fmt: skip
    """From the broker's return to an empty backlog; then a plain VACUUM."""
    up_at = time.monotonic()
    rows = figures["rows"]
    first_publish = None
    while True:
        sample = _sample(conn, started, relay.pid)
        samples.append({"phase": "drain", **sample})
        if first_publish is None and sample["pending"] < rows:
            first_publish = time.monotonic() - up_at
        if sample["pending"] == 0:
            break
        time.sleep(0.5)
    drained = time.monotonic() - up_at
    figures["first_publish_after_up_s"] = round(first_publish or drained, 1)
    figures["drain_s"] = round(drained, 1)
    figures["drain_rows_per_s"] = round(rows / max(drained - (first_publish or 0), 0.1))
    figures["after_drain"] = _sample(conn, started, relay.pid)
    conn.execute("VACUUM oncepipe.outbox")
    figures["after_vacuum"] = _sample(conn, started, relay.pid)


def run(rows: int, rate: float, value_bytes: int) -> dict[str, Any]:
    """The whole scenario; returns the figures."""
    env = BenchEnv()
    kafka = all_services()["kafka"]
    topic = env.create_topic("backpressure")
    with env.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE oncepipe.outbox")
    relay_env = {
        **os.environ,
        "ONCEPIPE_DATABASE_URL": env.database_url,
        "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": env.settings.kafka_bootstrap_servers,
        "ONCEPIPE_LOG_LEVEL": "WARNING",
        "ONCEPIPE_LOG_FORMAT": "json",
    }
    relay = subprocess.Popen([ONCEPIPE, "relay"], env=relay_env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    samples: list[dict[str, Any]] = []
    figures: dict[str, Any] = {"rows": rows, "rate": rate, "value_bytes": value_bytes}
    try:
        with env.connect(autocommit=True) as conn:
            started = time.monotonic()
            figures["before"] = _sample(conn, started, relay.pid)
            kafka.stop()
            down_at = time.monotonic()
            _outage(env, conn, relay, topic=topic, figures=figures, samples=samples,
                    started=started)  # fmt: skip
            figures["down_s"] = round(time.monotonic() - down_at, 1)
            kafka.start()
            _drain(conn, relay, figures, samples, started)
        figures["read_back"], figures["keys_out_of_order"] = _order_problems(env, topic, rows)
    finally:
        if not kafka.running():
            kafka.start()
        relay.terminate()
        relay.wait(60)
    figures["samples"] = samples
    growth = figures["at_broker_start"]["outbox_mb"] - figures["before"]["outbox_mb"]
    figures["bytes_per_row_on_disk"] = round(growth * 1e6 / rows)
    return figures


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run, print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.backpressure")
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="upstream rows per second")
    parser.add_argument("--value-bytes", type=int, default=200)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rows, args.rate, args.value_bytes), indent=1))


if __name__ == "__main__":
    main()
