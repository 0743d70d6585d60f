"""The inbox look-up against the retention: ``oncepipe.inbox_claim`` per event, fresh vs 14 days.

``python -m bench.inbox_retention [--rows 50000] [--batches 20] [--runs 3] [--variant both]``:
in throw-away databases on the same PostgreSQL server (``<database>_inbox_<variant>_fresh``
and ``..._14d``, dropped afterwards), a fresh inbox (today's rows only, three empty days
ahead) and one holding 14 past daily partitions of ``--rows`` rows each (half uuid4 ids, half
UUIDv7 ids whose time is their day's), each also holding ``--rows`` rows today. It then claims
``--batches`` batches of 500 new ids per run, one transaction each (the consumer's batch), uuid4
and UUIDv7 ids in turn, and prints the median µs per event of ``--runs`` runs, with the 14-day
over fresh ratio and the load average. Each is measured before (databases migrated without
0022: the look-up in every partition) and after, the cells interleaved; ``--variant``
measures one only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from oncepipe.migrations import MIGRATIONS_DIR, apply_migrations
from oncepipe.settings import load_settings
from schemas import uuid7

BATCH = 500
PAST_DAYS = 14
PRUNING_MIGRATION = "0022_inbox_prune"

# A UUIDv7 of the unix milliseconds $1 (random bits from a uuid4, version nibble set to 7).
_SQL_UUID7 = (
    "(substr(lpad(to_hex({ms}), 12, '0'), 1, 8) || '-' || substr(lpad(to_hex({ms}), 12, '0'), 9, 4)"
    " || '-7' || substr(gen_random_uuid()::text, 16))::uuid"
)


def _url_for(base: str, name: str) -> str:
    prefix, _, rest = base.partition("?")
    return f"{prefix.rpartition('/')[0]}/{name}" + (f"?{rest}" if rest else "")


@contextmanager
def _database(base: str, name: str, *, before: bool) -> Iterator[str]:
    """A freshly migrated database ``name`` (without 0022 when ``before``), dropped after."""
    admin = _url_for(base, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _url_for(base, name)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            source = MIGRATIONS_DIR
            if before:
                source = Path(scratch)
                for path in MIGRATIONS_DIR.iterdir():
                    if not path.name.startswith(PRUNING_MIGRATION):
                        shutil.copy(path, source / path.name)
            apply_migrations(url, source=source)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _fill(url: str, *, past_days: int, rows: int) -> None:
    """Daily partitions from ``past_days`` ago to today + 3; ``rows`` rows in each day to today."""
    today = datetime.now(UTC).date()
    with psycopg.connect(url, autocommit=True) as conn:
        if past_days:
            # The converted table covers everything up to tonight: replace it by daily ones.
            conn.execute("DROP TABLE oncepipe.inbox_legacy")
            for offset in range(-past_days, 4):
                conn.execute(
                    "SELECT oncepipe.inbox_create_partition(%s)", (today + timedelta(days=offset),)
                )
        for offset in range(-past_days, 1):
            day = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=offset)
            start_ms = int(day.timestamp() * 1000)
            span_ms = 86_400_000 if offset else max(1, int(time.time() * 1000) - start_ms - 1000)
            ms = f"({start_ms} + (random() * {span_ms})::bigint)"
            conn.execute(
                sql.SQL(
                    "INSERT INTO oncepipe.inbox (consumer_group, event_id, topic, partition,"
                    ' "offset", applied_at)'
                    " SELECT 'bench', CASE WHEN n % 2 = 0 THEN gen_random_uuid() ELSE {uuid7} END,"
                    " 't', 0, n, {at}"
                    " FROM generate_series(1, {rows}) AS n"
                ).format(
                    uuid7=sql.SQL(_SQL_UUID7.format(ms=ms)),
                    at=sql.SQL(f"to_timestamp(({start_ms} + {span_ms} - 1) / 1000.0)"),
                    rows=sql.Literal(rows),
                )
            )
        conn.execute("VACUUM ANALYZE oncepipe.inbox")  # no autovacuum run during the timing


def _claim_us(url: str, make_id: Callable[[], uuid.UUID], batches: int, run: int) -> float:
    """µs per event of ``batches`` inbox_claim calls of BATCH new ids, one transaction each."""
    statement = (
        "SELECT count(*) FROM oncepipe.inbox_claim('bench', %b::uuid[], %b::text[], %b::int[],"
        " %b::bigint[])"
    )
    topics, partitions = ["t"] * BATCH, [run + 1] * BATCH
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.commit()

        def one(n: int) -> int:
            ids = [make_id() for _ in range(BATCH)]
            offsets = list(range(n * BATCH, (n + 1) * BATCH))
            row: Any = conn.execute(statement, (ids, topics, partitions, offsets)).fetchone()
            conn.commit()
            return int(row[0])

        one(batches)  # plan caches warm
        started = time.perf_counter()
        inserted = sum(one(n) for n in range(batches))
        elapsed = time.perf_counter() - started
    if inserted != batches * BATCH:
        raise RuntimeError(f"{inserted} of {batches * BATCH} new ids were inserted")
    return elapsed / inserted * 1e6


def main() -> None:
    """Build the inboxes, time the claims interleaved, print µs per event and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000, help="rows per day")
    parser.add_argument("--batches", type=int, default=20, help="batches of 500 per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--variant", choices=("both", "before", "after"), default="both",
        help="before: without migration 0022 (the look-up in every partition)",
    )  # fmt: skip
    args = parser.parse_args()
    base = load_settings().database_url.get_secret_value()
    stem = base.partition("?")[0].rpartition("/")[2] or "oncepipe"
    kinds: dict[str, Callable[[], uuid.UUID]] = {"uuid4": uuid.uuid4, "uuid7": uuid7}
    variants = ("before", "after") if args.variant == "both" else (args.variant,)
    cells = [
        (v, label, past) for v in variants for label, past in (("fresh", 0), ("14d", PAST_DAYS))
    ]
    samples: dict[tuple[str, str, str], list[float]] = {}
    with ExitStack() as stack:
        urls = {}
        for variant, label, past in cells:
            name = f"{stem}_inbox_{variant}_{label}"
            url = stack.enter_context(_database(base, name, before=variant == "before"))
            _fill(url, past_days=past, rows=args.rows)
            urls[variant, label] = url
        with psycopg.connect(urls[cells[0][:2]], autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # the fills' writes, before the timing
        load_before = os.getloadavg()[0]
        # Interleaved, so that the machine's load drifts over every cell alike.
        for run in range(args.runs):
            for variant, label, _ in cells:
                for kind, make_id in kinds.items():
                    us = _claim_us(urls[variant, label], make_id, args.batches, run)
                    samples.setdefault((variant, label, kind), []).append(us)
        load_after = os.getloadavg()[0]
    print(
        f"inbox_claim: {args.batches} x {BATCH} new ids per run, median of {args.runs} runs;"
        f" {args.rows} rows per day; load average {load_before:.1f} -> {load_after:.1f}"
        f" on {os.cpu_count()} cores"
    )
    print(f"{'':<7}{'ids':<6} {'fresh µs/event':>15} {'14 days µs/event':>17} {'14d / fresh':>12}")
    for variant in variants:
        for kind in kinds:
            fresh = statistics.median(samples[variant, "fresh", kind])
            old = statistics.median(samples[variant, "14d", kind])
            print(f"{variant:<7}{kind:<6} {fresh:>15.1f} {old:>17.1f} {old / fresh:>11.2f}x")


if __name__ == "__main__":
    main()
