"""The orders service: an order's row and its ``OrderPlaced`` event commit together or not at all.

Two ways to write it, one behaviour:

- ``place_order(conn, request, codec=...)`` with a psycopg 3 connection;
- ``place_order_sqlalchemy(session, request, codec=...)`` with a SQLAlchemy 2 ``Session``: the
  outbox row is written on the DB-API connection under the session's own transaction
  (``session.connection().connection``), so ``session.commit()`` commits both.

Each is idempotent on the client's request id: the order id and the event id derive from it,
and a retried request finds the row its first attempt committed, adds nothing and returns the
same order (the outbox would also refuse a second row with the same event id).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Column, DateTime, MetaData, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import BIGINT, insert
from sqlalchemy.orm import Session

from orders_contract import OrderPlaced
from producers import enqueue
from schemas import Codec

__all__ = [
    "OrderRequest",
    "Placed",
    "event_id_for",
    "order_id_for",
    "order_placed",
    "orders_table",
    "outbox_connection",
    "place_order",
    "place_order_sqlalchemy",
]

_NAMESPACE = uuid.UUID("0b6f2f4e-3d0c-4f55-8f0e-7c3f5a9d1e21")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a client asks for; ``request_id`` is its idempotency key, the same on a retry."""

    request_id: str
    customer_id: str
    amount_cents: int
    channel: str


@dataclass(frozen=True, slots=True)
class Placed:
    """The answer: the order, and whether this request created it (False: a retry)."""

    order_id: uuid.UUID
    created: bool


def order_id_for(request_id: str) -> uuid.UUID:
    """The order id of a request: the same for every attempt."""
    return uuid.uuid5(_NAMESPACE, f"order\x00{request_id}")


def event_id_for(request_id: str) -> uuid.UUID:
    """The ``OrderPlaced`` event id of a request: the same for every attempt."""
    return uuid.uuid5(_NAMESPACE, f"order-placed\x00{request_id}")


def order_placed(request: OrderRequest, placed_at: datetime) -> OrderPlaced:
    """The event of a placed order, in the contract release this process runs with."""
    fields: dict[str, object] = {
        "event_id": event_id_for(request.request_id),
        "order_id": order_id_for(request.request_id),
        "customer_id": request.customer_id,
        "amount_cents": request.amount_cents,
        "placed_at": placed_at,
    }
    if "channel" in OrderPlaced.model_fields:  # contract release 2 on (OrderPlaced v2)
        fields["channel"] = request.channel
    return OrderPlaced.model_validate(fields)


def _now() -> datetime:
    # The wire keeps milliseconds: store the same instant the event carries.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# -- psycopg 3 ---------------------------------------------------------------------------------

_INSERT = """
INSERT INTO public.orders (order_id, request_id, customer_id, amount_cents, channel, placed_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (request_id) DO NOTHING
RETURNING order_id
"""


def place_order(conn: psycopg.Connection[Any], request: OrderRequest, *, codec: Codec) -> Placed:
    """Insert the order and enqueue its event in one transaction; a retry adds nothing."""
    order_id, placed_at = order_id_for(request.request_id), _now()
    with conn.transaction():
        row = conn.execute(
            _INSERT,
            (order_id, request.request_id, request.customer_id, request.amount_cents,
             request.channel, placed_at),
        ).fetchone()  # fmt: skip
        if row is None:  # this request id already has its order: a retry
            return Placed(order_id, created=False)
        enqueue(conn, order_placed(request, placed_at), codec=codec)
    return Placed(order_id, created=True)


# -- SQLAlchemy 2 ------------------------------------------------------------------------------

metadata = MetaData()
orders_table = Table(
    "orders",
    metadata,
    Column("seq", BIGINT),  # an identity column: the database fills it
    Column("order_id", Uuid, primary_key=True),
    Column("request_id", Text, nullable=False, unique=True),
    Column("customer_id", Text, nullable=False),
    Column("amount_cents", BIGINT, nullable=False),
    Column("channel", Text, nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    schema="public",
)


def outbox_connection(session: Session) -> Any:
    """The DB-API connection under ``session``'s transaction (begun if it was not).

    ``enqueue`` speaks plain DB-API, so the outbox row written through it is part of the
    session's transaction: ``session.commit()`` commits it with the ORM's writes, and
    ``session.rollback()`` discards both.
    """
    return session.connection().connection


def place_order_sqlalchemy(session: Session, request: OrderRequest, *, codec: Codec) -> Placed:
    """``place_order`` for a SQLAlchemy session: one transaction, committed here."""
    order_id, placed_at = order_id_for(request.request_id), _now()
    with session.begin():
        inserted = session.execute(
            insert(orders_table)
            .values(
                order_id=order_id,
                request_id=request.request_id,
                customer_id=request.customer_id,
                amount_cents=request.amount_cents,
                channel=request.channel,
                placed_at=placed_at,
            )
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(orders_table.c.order_id)
        ).first()
        if inserted is None:
            return Placed(order_id, created=False)
        enqueue(outbox_connection(session), order_placed(request, placed_at), codec=codec)
    return Placed(order_id, created=True)
