"""The load generator: client requests to the orders service, some of them retried.

Request ``n`` of a seed is always the same (request id, customer, amount, channel), so a run
split into phases (before and after a rollout) places exactly the orders of one unsplit run.
A retried request is sent again a few requests later with the same request id, as a client
does after a lost reply; the service must answer it with the order it already placed.
Requests alternate between the psycopg service and the SQLAlchemy one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from orders.service import OrderRequest, place_order, place_order_sqlalchemy
from orders_contract import RELEASE
from schemas import Codec, SchemaStore

__all__ = ["CHANNELS", "LoadReport", "make_requests", "run_load", "with_retries"]

CHANNELS = ("web", "app", "store")


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What one load run did."""

    release: int
    fingerprint: str
    requests: int
    created: int
    retries_absorbed: int
    seconds: float


def make_requests(first: int, count: int, *, customers: int, seed: int) -> list[OrderRequest]:
    """Requests ``first`` to ``first + count - 1`` of ``seed``: the same on every run."""
    requests = []
    for n in range(first, first + count):
        rng = random.Random(f"{seed}:{n}")  # noqa: S311 - a reproducible load
        requests.append(
            OrderRequest(
                request_id=f"req-{seed}-{n}",
                customer_id=f"c{rng.randrange(customers):04d}",
                amount_cents=rng.randrange(500, 20_000),
                channel=rng.choice(CHANNELS),
            )
        )
    return requests


def with_retries(
    requests: Sequence[OrderRequest], retry_rate: float, *, seed: int
) -> list[OrderRequest]:
    """The requests plus ``retry_rate`` of them again, each 1 to 20 requests after its first."""
    first = requests[0].request_id if requests else ""
    rng = random.Random(f"{seed}:retries:{first}")  # noqa: S311 - a reproducible load
    keyed = [(float(n), request) for n, request in enumerate(requests)]
    for n in rng.sample(range(len(requests)), round(len(requests) * retry_rate)):
        keyed.append((n + rng.uniform(1, 20), requests[n]))
    return [request for _, request in sorted(keyed, key=lambda pair: pair[0])]


def run_load(
    database_url: str, requests: Sequence[OrderRequest], *, rate: float | None = None
) -> LoadReport:
    """Send each request to the service, in order; ``rate`` paces them (requests per second)."""
    codec = Codec.load()
    # A producer registers its writer schemas before its first event: consumers that do not
    # ship this release's versions yet find them in the store by fingerprint.
    SchemaStore(database_url).register(codec)
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(database_url))
    created = absorbed = 0
    started = time.monotonic()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn, Session(engine) as session:
            for sent, request in enumerate(requests):
                if sent % 2 == 0:
                    placed = place_order(conn, request, codec=codec)
                else:
                    placed = place_order_sqlalchemy(session, request, codec=codec)
                created, absorbed = created + placed.created, absorbed + (not placed.created)
                if rate is not None:
                    ahead = (sent + 1) / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
    finally:
        engine.dispose()
    return LoadReport(
        release=RELEASE,
        fingerprint=codec.newest_fingerprint("OrderPlaced"),
        requests=len(requests),
        created=created,
        retries_absorbed=absorbed,
        seconds=round(time.monotonic() - started, 3),
    )
