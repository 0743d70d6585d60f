"""``python -m tests.faults.chaos``: one chaos run against the services of ``infra.paths.layout()``.

Exit 0 when every invariant held, 1 when one did not, 2 when the services are not running.
``make chaos DURATION=600 SEED=42`` runs it under ``python -m infra run``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from infra import Kafka, Postgres
from infra.paths import layout
from tests.faults.chaos.config import ChaosConfig, default_kinds
from tests.faults.chaos.pipeline import Services
from tests.faults.chaos.queue_mode import queue_config
from tests.faults.chaos.report import render
from tests.faults.chaos.run import run_chaos


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults")
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--events", type=int, default=100_000, help="distinct events")
    parser.add_argument("--mean-gap", type=float, default=5.0, help="mean seconds between faults")
    parser.add_argument(
        "--network", action="store_true", help="workers behind TCP proxies; network faults"
    )
    parser.add_argument("--relays", type=int, default=3, help="relay processes sharing the outbox")
    parser.add_argument("--workdir", type=Path, default=None, help="logs, manifests, result")
    parser.add_argument(
        "--no-poison-policies", action="store_true",
        help="consumers with the default --on-poison skip, no marked records (poison_faults.py)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="result file (default: workdir)")
    parser.add_argument(
        "--mode", choices=("partition", "queue"), default="partition",
        help="queue: share-group workers (tests/faults/chaos/queue_mode.py says what applies)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    kinds = default_kinds()
    seed = args.seed if args.seed is not None else time.time_ns() % 100_000
    where = layout()
    services = Services(Kafka(where), Postgres(where))
    if not (services.kafka.running() and services.postgres.running()):
        print("chaos: Kafka and PostgreSQL must run (make up, or make chaos)", file=sys.stderr)
        return 2
    workdir = args.workdir or where.state_dir / "chaos" / f"seed-{seed}-{int(time.time())}"
    workdir.mkdir(parents=True, exist_ok=True)
    config = ChaosConfig(
        duration_s=args.duration,
        seed=seed,
        events=args.events,
        mean_gap_s=args.mean_gap,
        network=args.network,
        relays=args.relays,
        brokers=services.brokers,
        kinds=kinds,
        poison_policies=not args.no_poison_policies,
    )
    if args.mode == "queue":
        config = queue_config(config)
    print(
        f"chaos: seed {seed}, mode {config.mode}, brokers {services.brokers}, "
        f"network {args.network}"
    )
    print(f"chaos: workdir {workdir}")
    result = run_chaos(config, services, workdir, log=lambda line: print(line, flush=True))
    out = args.json or workdir / "result.json"
    result.write(out)
    print(render(result))
    print(f"result written to {out}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
