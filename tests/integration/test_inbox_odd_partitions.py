"""Inbox maintenance keeps working when someone added a DEFAULT or a MAXVALUE partition."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from consumers.inbox_partitions import LEGACY, UNBOUNDED, list_partitions, maintain

pytestmark = pytest.mark.integration


def _names(conn: psycopg.Connection[object]) -> set[str]:
    return {p.name for p in list_partitions(conn)}


def test_a_default_partition_is_kept_while_expired_days_are_dropped(database_url: str) -> None:
    today = datetime.now(UTC).date()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE oncepipe.inbox_rest PARTITION OF oncepipe.inbox DEFAULT")
        first = maintain(conn, retention_days=14, today=today)
        assert not first.failed
        later = today + timedelta(days=30)

        report = maintain(conn, retention_days=14, today=later)

        assert not report.failed, report.failed
        assert LEGACY in report.dropped
        assert f"inbox_p{later:%Y%m%d}" in report.created
        assert "inbox_rest" in report.kept
        names = _names(conn)
        assert "inbox_rest" in names
        assert LEGACY not in names
        default = next(p for p in list_partitions(conn) if p.name == "inbox_rest")
        assert default.is_default
        assert default.upper == UNBOUNDED


def test_days_inside_a_maxvalue_partition_are_not_created_and_it_never_expires(
    database_url: str,
) -> None:
    today = datetime.now(UTC).date()
    start = today + timedelta(days=20)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE oncepipe.inbox_future PARTITION OF oncepipe.inbox"
            " FOR VALUES FROM (%s) TO (MAXVALUE)".replace("%s", f"'{start.isoformat()}'")
        )
        inside: date = start + timedelta(days=1)

        report = maintain(conn, retention_days=2, today=inside)

        assert not report.failed, report.failed
        assert report.created == []
        assert "inbox_future" in report.kept
        assert LEGACY in report.dropped
        assert "inbox_future" in _names(conn)
