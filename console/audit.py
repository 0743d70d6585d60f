"""The console's audit trail, ``oncepipe.console_audit``: who did what, when, to how many.

Public names: ``Entry``, ``record``, ``recent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

__all__ = ["Entry", "recent", "record"]


@dataclass(frozen=True)
class Entry:
    """One audited action."""

    id: int
    at: datetime
    actor: str
    action: str
    selection: dict[str, Any]
    selected: int
    done: int
    detail: str | None


def record(
    conn: Any,
    actor: str,
    action: str,
    selection: dict[str, Any],
    *,
    selected: int = 0,
    done: int = 0,
    detail: str | None = None,
) -> None:
    """Write one audit row (committed with the caller's transaction, or at once in autocommit)."""
    conn.execute(
        "INSERT INTO oncepipe.console_audit (actor, action, selection, selected, done, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (actor, action, Jsonb(selection), selected, done, detail),
    )


def recent(conn: Any, limit: int = 100) -> list[Entry]:
    """The latest audit rows, newest first."""
    rows = conn.execute(
        "SELECT id, at, actor, action, selection, selected, done, detail "
        "FROM oncepipe.console_audit ORDER BY id DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [Entry(*row) for row in rows]
