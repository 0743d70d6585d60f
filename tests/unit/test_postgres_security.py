"""The secured local PostgreSQL's settings: the roles of migration 0014, no secret in `make env`."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from infra.paths import layout
from infra.postgres.security import COMPONENT_ROLES, scram_verifier
from infra.postgres.server import Postgres
from oncepipe.migrations import MIGRATIONS_DIR


def test_the_login_roles_infra_sets_passwords_for_are_those_of_the_migration() -> None:
    sql = (MIGRATIONS_DIR / "0014_roles.sql").read_text()
    created = set(re.findall(r"\('(oncepipe_\w+)', true\)", sql))
    assert created == set(COMPONENT_ROLES.values())


def test_scram_verifier_has_postgres_format() -> None:
    verifier = scram_verifier("secret", b"0123456789abcdef")
    assert re.fullmatch(
        r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+", verifier
    )
    assert "secret" not in verifier


@pytest.mark.parametrize("component", ["admin", *COMPONENT_ROLES])
def test_env_names_the_role_and_its_passfile_never_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, component: str
) -> None:
    monkeypatch.setenv("ONCEPIPE_INFRA_POSTGRES_PRINCIPAL", component)
    server = Postgres(replace(layout(), state_dir=tmp_path, postgres_security="scram-tls"))
    # Pinned: as root the cluster would otherwise live under the postgres user's home.
    server.__dict__["home"] = tmp_path / "postgres"
    assert server.security is not None
    server.security.ensure()
    env = server.env()
    role = server.security.role(component)
    assert env["ONCEPIPE_DATABASE_URL"].startswith(f"postgresql://{role}@127.0.0.1:")
    assert "sslmode=verify-full" in env["ONCEPIPE_DATABASE_URL"]
    assert Path(env["PGPASSFILE"]) == server.security.passfile(role)
    assert Path(env["PGPASSFILE"]).stat().st_mode & 0o777 == 0o600
    assert server.security.key_file.stat().st_mode & 0o777 == 0o600
    for other in server.security.roles:
        assert server.security.password(other) not in "".join(env.values())
