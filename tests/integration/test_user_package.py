"""A user's package outside the repository adds event types and a handler; oncepipe applies it.

The package (``shop``: ``.avsc`` files, models with ``@event_type``, an ``EventHandlers``) is
written into a temporary folder and put on PYTHONPATH. Its schemas go to the store through
``oncepipe schema register``; orders go through the outbox and the relay to a real topic;
a real ``oncepipe consume --handler shop.handlers:handlers`` applies them to the user's table
and emits ``CustomerMilestone`` events of the package's other type into the outbox. A click on
the same topic (a type the handlers have no function for) is dead-lettered, not skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from oncepipe.settings import Settings
from producers import enqueue
from schemas import ClickAction, ClickEvent, Codec, topic_for
from tests.fixtures.relay import ONCEPIPE, RelayThread, wait_drained, worker_env
from tests.fixtures.user_types import write_shop_package
from tests.fixtures.workers import WorkerPool, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("forget_user_types")]

CUSTOMERS = {"c1": 7, "c2": 3, "c3": 1, "c4": 6}  # orders per customer
START = datetime(2026, 3, 1, tzinfo=UTC)


def oncepipe(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ONCEPIPE, *args],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def totals(database_url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT customer_id, orders, amount_cents FROM shop_totals").fetchall()
    return {str(c): (int(n), int(a)) for c, n, a in rows}


def outbox(database_url: str, topic: str) -> list[tuple[bytes, bytes]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT key, value FROM oncepipe.outbox WHERE topic = %s ORDER BY id", (topic,)
        ).fetchall()
    return [(bytes(k), bytes(v)) for k, v in rows]


def test_a_package_outside_the_repository_is_consumed_by_its_handlers(
    settings: Settings,
    make_topic: Callable[..., str],
    relay_thread: Callable[..., RelayThread],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = write_shop_package(tmp_path / "outside")
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTHONPATH", path)  # the workers' environment
    monkeypatch.syspath_prepend(str(root))  # this process builds the events
    from shop.events import CustomerMilestone, OrderPlaced  # type: ignore[import-not-found]

    codec = Codec.load()  # after the import: it knows the package's types
    database_url = settings.database_url.get_secret_value()

    # The package's schemas reach the store (and list says so) through the command line.
    registered = oncepipe(settings, "schema", "register", "--import", "shop.events")
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.startswith("4 new writer schema(s) stored")
    listed = oncepipe(settings, "schema", "list", "--json", "--import", "shop.events")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    assert {(r["event_type"], r["stored"], r["model"]) for r in rows} >= {
        ("OrderPlaced", True, "shop.events.OrderPlaced"),
        ("CustomerMilestone", True, "shop.events.CustomerMilestone"),
    }

    topic = make_topic("events.OrderPlaced", 3)
    orders = [
        OrderPlaced(
            event_id=uuid.uuid4(),
            order_id=f"{customer}-{n}",
            customer_id=customer,
            amount_cents=100 * (n + 1),
            placed_at=START + timedelta(minutes=n),
        )
        for customer, count in CUSTOMERS.items()
        for n in range(count)
    ]
    stray = ClickEvent(
        event_id=uuid.uuid4(),
        user_id="u",
        item_id="i",
        action=ClickAction.VIEW,
        occurred_at=START,
        session_id="s",
    )
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "CREATE TABLE shop_totals (customer_id text PRIMARY KEY, orders int NOT NULL,"
            " amount_cents bigint NOT NULL)"
        )
        for event in [*orders[:5], stray, *orders[5:]]:
            assert enqueue(conn, event, codec=codec, topic=topic)
    relay = relay_thread()
    wait_drained(settings)
    relay.stop()  # the milestones stay in the outbox, where the test reads them

    pool = WorkerPool(settings, tmp_path, f"shop-{uuid.uuid4().hex[:8]}", topic)
    try:
        worker = pool.start(handler="shop.handlers:handlers")
        expected = {
            customer: (count, sum(100 * (n + 1) for n in range(count)))
            for customer, count in CUSTOMERS.items()
        }
        wait_until(lambda: totals(database_url) == expected, 60, "the orders applied")
        wait_until(
            lambda: bool(outbox(database_url, f"{topic}.dlq")), 60, "the click's dead letter"
        )
        assert worker.terminate() == 0
    finally:
        pool.reap()

    assert totals(database_url) == expected  # once each, nothing more after the stop
    milestones = [
        codec.to_model(codec.decode(value))
        for _, value in outbox(database_url, topic_for("CustomerMilestone"))
    ]
    assert all(isinstance(m, CustomerMilestone) for m in milestones)
    reached = Counter((m.customer_id, m.orders) for m in milestones)  # type: ignore[attr-defined]
    assert reached == Counter(
        (customer, n) for customer, count in CUSTOMERS.items() for n in range(3, count + 1, 3)
    )
    assert {key for key, _ in outbox(database_url, topic_for("CustomerMilestone"))} == {
        b"c1",
        b"c2",
        b"c4",
    }
    [(key, value)] = outbox(database_url, f"{topic}.dlq")
    assert (key, value) == (b"u", codec.encode(stray).value)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT h.value FROM oncepipe.outbox o,"
            " unnest(o.header_names, o.header_values) AS h(name, value)"
            " WHERE o.topic = %s AND h.name = 'dlq.error.message'::bytea",
            (f"{topic}.dlq",),
        ).fetchone()
    assert row is not None
    assert "no handler function for event type ClickEvent" in bytes(row[0]).decode()
