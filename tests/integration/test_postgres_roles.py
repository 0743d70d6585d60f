"""Least privilege on the secured PostgreSQL: each component's role can do its work, nothing else."""

from __future__ import annotations

import psycopg
import pytest

from tests.fixtures.secured_postgres import SecuredPostgres


def test_superuser_over_tls_sees_the_role_layout(secured_postgres: SecuredPostgres) -> None:
    with secured_postgres.connect("admin") as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'oncepipe'"
        ).fetchone()
        ssl = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert owner == ("oncepipe_owner",)
    assert ssl == (True,)
