"""``python -m bench``: every benchmark side by side with its baseline, then the report.

python -m bench [--quick] [--only produce,outbox,...] [--runs N]

``BENCH_QUICK=1`` in the environment is the same as ``--quick``: a smoke run of about five
minutes, one run per variant, of the core suites (``QUICK_SUITES``); the others (the JVM peers,
fail-over, relays, queue, ...) run quick only when named in ``--only``.
The services must run and ``ONCEPIPE_*`` point at them: ``make bench`` does that.
Each suite writes ``bench/results/<suite>.json``; the report regenerates the tables of
``bench/README.md`` from every JSON file there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable

from bench.env import BenchEnv
from bench.report import write_report
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings

SUITES = (
    "machine", "codec", "produce", "outbox", "latency", "consume", "dlq", "peer", "profile",
    "security", "observe", "ingest", "relays", "tracing", "console", "failover",
    "flink", "queue",
)  # fmt: skip
# The write -> Kafka -> PostgreSQL path; what a quick run without --only covers in ~5 minutes.
QUICK_SUITES = ("machine", "codec", "produce", "outbox", "latency", "consume", "dlq")


def _suites(env: BenchEnv, quick: bool, runs: int) -> dict[str, Callable[[], object]]:
    # Imported lazily: a suite's dependencies load only when it runs.
    from bench.codec import run_codec  # noqa: PLC0415
    from bench.console import run_console  # noqa: PLC0415
    from bench.consume import run_consume  # noqa: PLC0415
    from bench.dlq import run_dlq  # noqa: PLC0415
    from bench.failover import run_failover  # noqa: PLC0415
    from bench.flink import run_flink  # noqa: PLC0415
    from bench.ingest import run_ingest  # noqa: PLC0415
    from bench.latency import run_latency  # noqa: PLC0415
    from bench.machine import run_machine  # noqa: PLC0415
    from bench.observe import run_observe  # noqa: PLC0415
    from bench.outbox import run_outbox  # noqa: PLC0415
    from bench.peer_suite import run_peer  # noqa: PLC0415
    from bench.produce import run_produce  # noqa: PLC0415
    from bench.profile import main as profile_consumer  # noqa: PLC0415
    from bench.queue import run_queue  # noqa: PLC0415
    from bench.relays import run_relays  # noqa: PLC0415
    from bench.security import run_security  # noqa: PLC0415
    from bench.tracing import run_tracing  # noqa: PLC0415

    return {
        "machine": lambda: run_machine(env, quick=quick),
        "codec": lambda: run_codec(quick=quick, runs=max(runs, 3)),
        "produce": lambda: run_produce(env, quick=quick, runs=runs).write(),
        "outbox": lambda: run_outbox(env, quick=quick, runs=runs).write(),
        "latency": lambda: run_latency(env, quick=quick, runs=runs).write(),
        "consume": lambda: run_consume(env, quick=quick, runs=runs).write(),
        "dlq": lambda: run_dlq(env, quick=quick, runs=runs).write(),
        "peer": lambda: run_peer(env, quick=quick, runs=runs).write(),
        "observe": lambda: run_observe(env, quick=quick, runs=runs).write(),
        "ingest": lambda: run_ingest(env, quick=quick, runs=runs).write(),
        "profile": lambda: profile_consumer(["--events", "20000" if quick else "60000"]),
        "security": lambda: run_security(env, quick=quick, runs=runs).write(),
        "relays": lambda: run_relays(env, quick=quick, runs=runs).write(),
        "tracing": lambda: run_tracing(env, quick=quick, runs=runs).write(),
        "console": lambda: run_console(env, quick=quick).write(),
        "failover": lambda: run_failover(env, quick=quick, runs=runs),
        "flink": lambda: run_flink(env, quick=quick),
        "queue": lambda: run_queue(env, quick=quick, runs=runs).write(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites, write their results and the report; 1 if any failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    parser.add_argument("--only", default="", help=f"comma-separated, from {', '.join(SUITES)}")
    parser.add_argument(
        "--runs", type=int, default=None, help="runs of each variant (default 3; 1 with --quick)"
    )
    args = parser.parse_args(argv)
    quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    runs = args.runs if args.runs is not None else (1 if quick else 3)
    named = [name.strip() for name in args.only.split(",") if name.strip()]
    chosen = named or list(QUICK_SUITES if quick else SUITES)
    configure_logging(load_settings(log_level="WARNING"))
    env = BenchEnv()
    suites = _suites(env, quick, runs)
    failed = []
    for name in chosen:
        if name not in suites:
            print(f"bench: suite {name!r} is not available here, skipped", file=sys.stderr)
            continue
        begin = time.monotonic()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            suites[name]()
        except Exception:  # noqa: BLE001 - report it, run the other suites, fail at the end
            traceback.print_exc()
            failed.append(name)
        print(f"bench: {name} took {time.monotonic() - begin:.0f}s", file=sys.stderr, flush=True)
    print(f"bench: wrote {write_report()}", file=sys.stderr)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
