"""``python -m orders setup | load | report``: the example's command line.

It reads the same ``ONCEPIPE_*`` variables as oncepipe (``eval "$(make env)"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import psycopg

from oncepipe.kafka import create_admin
from oncepipe.migrations import apply_migrations
from oncepipe.settings import load_settings
from orders.load import make_requests, run_load, with_retries
from orders.tables import create_tables
from producers import ProducerSettings, TopicSettings, create_event_topics
from schemas import topic_for

TOPICS = [topic_for("OrderPlaced"), topic_for("CustomerMilestone")]


def _setup(_args: argparse.Namespace) -> None:
    settings = load_settings()
    url = settings.database_url.get_secret_value()
    apply_migrations(url)
    create_tables(url)
    created = create_event_topics(
        create_admin(settings), TOPICS, TopicSettings(), ProducerSettings()
    )
    print(json.dumps({"tables": "ready", "topics_created": created}))


def _load(args: argparse.Namespace) -> None:
    url = load_settings().database_url.get_secret_value()
    requests = make_requests(args.first, args.count, customers=args.customers, seed=args.seed)
    report = run_load(url, with_retries(requests, args.retry_rate, seed=args.seed), rate=args.rate)
    print(json.dumps(dataclasses.asdict(report)))


_REPORT = """
WITH truth AS (
    SELECT customer_id, count(*) AS orders, sum(amount_cents) AS amount_cents
    FROM public.orders GROUP BY customer_id
), applied AS (
    SELECT customer_id, orders, amount_cents FROM public.customer_totals
    WHERE consumer_group = %(group)s
)
SELECT
    (SELECT count(*) FROM public.orders),
    (SELECT count(*) FROM truth FULL JOIN applied USING (customer_id)
     WHERE truth.orders IS DISTINCT FROM applied.orders
        OR truth.amount_cents IS DISTINCT FROM applied.amount_cents),
    (SELECT count(*) FROM public.customer_milestones WHERE consumer_group = %(log)s),
    (SELECT count(*) FROM oncepipe.outbox WHERE topic LIKE '%%.dlq')
"""


def _report(args: argparse.Namespace) -> None:
    url = load_settings().database_url.get_secret_value()
    with psycopg.connect(url) as conn:
        row = conn.execute(_REPORT, {"group": args.group, "log": args.log_group}).fetchone()
    orders, wrong, milestones, dead = row or (0, 0, 0, 0)
    print(
        json.dumps(
            {"orders": orders, "customers_off": wrong, "milestones": milestones,
             "dead_letters": dead}
        )
    )  # fmt: skip
    sys.exit(0 if wrong == 0 and dead == 0 else 1)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(prog="python -m orders", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "setup", help="oncepipe's migrations, the example's tables, its two topics"
    ).set_defaults(run=_setup)
    load = commands.add_parser("load", help="send client requests to the orders service")
    load.add_argument("--first", type=int, default=0, help="number of the first request")
    load.add_argument("--count", type=int, default=1000, help="distinct requests (orders)")
    load.add_argument("--retry-rate", type=float, default=0.2, help="share sent twice")
    load.add_argument("--customers", type=int, default=50)
    load.add_argument("--seed", type=int, default=7)
    load.add_argument("--rate", type=float, default=None, help="requests per second")
    load.set_defaults(run=_load)
    report = commands.add_parser("report", help="totals against the orders table")
    report.add_argument("--group", default="order-totals", help="the totals consumer group")
    report.add_argument("--log-group", default="milestone-log", help="the milestones group")
    report.set_defaults(run=_report)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
