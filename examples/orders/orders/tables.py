"""The example's tables: ``tables.sql``, applied by ``python -m orders setup``."""

from __future__ import annotations

from pathlib import Path

import psycopg

__all__ = ["TABLES_SQL", "create_tables"]

TABLES_SQL = Path(__file__).resolve().parent / "tables.sql"


def create_tables(database_url: str) -> None:
    """Create the orders, customer_totals and customer_milestones tables if missing."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TABLES_SQL.read_text(encoding="utf-8").encode("utf-8"))
