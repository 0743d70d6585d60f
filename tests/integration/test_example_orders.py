"""The orders example (examples/orders) end to end, and its contract's evolution rules.

The short run: 300 orders, 20% of the requests retried, the relay and both consumer groups as
real ``oncepipe relay`` / ``oncepipe consume`` processes, the service moving to contract release
2 (``OrderPlaced`` v2) while the consumers run release 1, then the consumers upgraded; totals and
milestones equal to what the orders table says, nothing dead-lettered
(``tests/fixtures/orders_rollout.py``; ``make example-orders`` runs 10,000 orders).

An incompatible v3 (a new field without a default), made in a copy of the contract, is refused
by ``oncepipe schema check`` and by the codec when the contract is imported.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from oncepipe.kafka import AdminClient
from oncepipe.settings import Settings
from schemas import Codec
from schemas.registry import unregister
from tests.fixtures.orders_rollout import (
    CONTRACT_AVRO,
    EXAMPLE,
    ONCEPIPE,
    RELEASE_1,
    Plan,
    Rollout,
    delete_topics,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def example_topics(kafka_admin: AdminClient) -> Iterator[None]:
    """The example's fixed topic names, free before (an earlier run's records would count)
    and after (this run's would count in a hand-started example)."""
    delete_topics(kafka_admin)
    yield
    delete_topics(kafka_admin)


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("example_topics")
def test_orders_pipeline_with_a_contract_rollout_is_exact(
    settings: Settings, tmp_path: Path
) -> None:
    plan = Plan(orders=300, retry_rate=0.2, customers=30, seed=11, drain_timeout_s=120)
    figures = Rollout(
        settings.kafka_bootstrap_servers,
        settings.database_url.get_secret_value(),
        tmp_path,
        plan,
        log=lambda _line: None,
    ).run()
    assert figures.problems == []
    assert figures.totals_exact
    assert figures.milestones_exact
    assert figures.milestones > 0
    assert figures.retries_absorbed == sum(round(n * 0.2) for n in plan.phases)
    assert figures.applied_by_release_2 >= plan.phases[3]
    assert (figures.events_v1, figures.events_v2) == (120, 180)
    assert figures.dead_letters == 0
    assert figures.failures_counted == 0
    assert set(figures.worker_exit_codes.values()) == {0}


def test_release_1_is_the_published_v1() -> None:
    """The release-1 copy holds byte for byte the files release 2 still ships as v1."""
    old = sorted(path.name for path in (RELEASE_1 / "orders_contract" / "avro").iterdir())
    assert old == ["customer_milestone.v1.avsc", "order_placed.v1.avsc"]
    for name in old:
        assert (RELEASE_1 / "orders_contract" / "avro" / name).read_bytes() == (
            CONTRACT_AVRO / name
        ).read_bytes()


def _contract_with_v3(tmp_path: Path) -> Path:
    """A copy of the example with an incompatible OrderPlaced v3 (never shipped)."""
    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("releases", "__pycache__"))
    avro = copy / "orders_contract" / "avro"
    v3 = json.loads((avro / "order_placed.v2.avsc").read_text())
    v3["fields"].append({"name": "warehouse_id", "type": "string"})  # no default
    (avro / "order_placed.v3.avsc").write_text(json.dumps(v3, indent=2))
    init = copy / "orders_contract" / "__init__.py"
    model = '    channel: str = "unknown"\n'
    init.write_text(init.read_text().replace(model, model + "    warehouse_id: str\n"))
    return copy


def test_incompatible_v3_is_refused_by_schema_check(tmp_path: Path) -> None:
    """``oncepipe schema check DIR``, as a user's CI runs it: exit 1, naming the field."""
    avro = _contract_with_v3(tmp_path) / "orders_contract" / "avro"
    done = subprocess.run(
        [ONCEPIPE, "schema", "check", str(avro)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "v2 -> v3: OrderPlaced.warehouse_id: field added without a default" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("oncepipe: 1 of 2 event type(s)"), done.stderr
    # The shipped contract passes the same check.
    done = subprocess.run(
        [ONCEPIPE, "schema", "check", str(CONTRACT_AVRO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OrderPlaced: v1..v2 compatible" in done.stdout


def test_incompatible_v3_is_refused_by_the_codec_at_load(tmp_path: Path) -> None:
    copy = _contract_with_v3(tmp_path)
    program = "import orders_contract\nfrom schemas import Codec\nCodec.load()\n"
    done = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, "PYTHONPATH": str(copy)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("schemas.catalog.CatalogError: OrderPlaced versions are incompatible")
    assert "OrderPlaced.warehouse_id: field added without a default" in last, last


@pytest.fixture
def service(database_url: str) -> Iterator[ModuleType]:
    """``orders.service`` with its contract registered (and forgotten afterwards), tables made."""
    from orders.tables import create_tables

    create_tables(database_url)
    module = importlib.import_module("orders.service")
    try:
        yield module
    finally:
        for name in ("OrderPlaced", "CustomerMilestone"):
            unregister(name)
        for name in ("orders_contract", "orders.service"):
            sys.modules.pop(name, None)  # a later import registers the types again


def _rows(database_url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with psycopg.connect(database_url) as conn:
        orders = conn.execute("SELECT order_id, request_id FROM public.orders").fetchall()
        outbox = conn.execute("SELECT topic, dedupe_id FROM oncepipe.outbox").fetchall()
    return orders, outbox


@pytest.mark.parametrize(
    ("first", "retry"),
    [("psycopg", "psycopg"), ("sqlalchemy", "sqlalchemy"), ("psycopg", "sqlalchemy")],
)
def test_a_retried_request_is_one_order_and_one_event(
    service: ModuleType, database_url: str, first: str, retry: str
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    codec = Codec.load()
    request = service.OrderRequest("req-1", "c1", 1250, "web")
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(database_url))
    answers = []
    with psycopg.connect(database_url, autocommit=True) as conn, Session(engine) as session:
        for driver in (first, retry):
            if driver == "psycopg":
                answers.append(service.place_order(conn, request, codec=codec))
            else:
                answers.append(service.place_order_sqlalchemy(session, request, codec=codec))
    engine.dispose()
    assert [a.created for a in answers] == [True, False]
    assert answers[0].order_id == answers[1].order_id == service.order_id_for("req-1")
    orders, outbox = _rows(database_url)
    assert orders == [(service.order_id_for("req-1"), "req-1")]
    assert outbox == [("events.order_placed", str(service.event_id_for("req-1")))]


def test_the_outbox_row_joins_the_sqlalchemy_sessions_transaction(
    service: ModuleType, database_url: str
) -> None:
    from sqlalchemy import create_engine, insert
    from sqlalchemy.orm import Session

    from producers import enqueue

    codec = Codec.load()
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(database_url))
    for request_id, commit in (("req-rolled-back", False), ("req-committed", True)):
        request = service.OrderRequest(request_id, "c1", 990, "app")
        event = service.order_placed(request, datetime(2026, 1, 1, tzinfo=UTC))
        with Session(engine) as session:
            session.execute(
                insert(service.orders_table).values(
                    order_id=event.order_id, request_id=request_id, customer_id="c1",
                    amount_cents=990, channel="app", placed_at=event.placed_at,
                )
            )  # fmt: skip
            enqueue(service.outbox_connection(session), event, codec=codec)
            session.commit() if commit else session.rollback()
    engine.dispose()
    orders, outbox = _rows(database_url)
    assert [request_id for _, request_id in orders] == ["req-committed"]
    assert outbox == [("events.order_placed", str(service.event_id_for("req-committed")))]
