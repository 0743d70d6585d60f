"""The native PostgreSQL keeps data across restarts; migrations are recorded and forward-only;
`make up` works from a clone in a private folder and follows a moved port."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from infra import Postgres
from infra.paths import REPO_ROOT, layout
from infra.process import port_open
from oncepipe.db import connect
from oncepipe.errors import DatabaseUnavailableError
from oncepipe.migrations import apply_migrations, pending_migrations
from oncepipe.settings import Settings
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration


def test_migrations_are_recorded_and_not_applied_twice(database_url: str) -> None:
    assert pending_migrations(database_url) == []
    assert apply_migrations(database_url) == []
    with psycopg.connect(database_url) as conn:
        applied = [row[0] for row in conn.execute("SELECT migration_id FROM _yoyo_migration")]
        schema = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'oncepipe'").fetchone()
    assert "0001_oncepipe_schema" in applied
    assert schema == (1,)


def test_worker_sessions_cannot_idle_in_a_transaction_forever(settings: Settings) -> None:
    with connect(settings, "oncepipe-test") as conn:
        timeout = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        name = conn.execute("SHOW application_name").fetchone()
    assert timeout == ("1min",)
    assert name == ("oncepipe-test",)


def test_unreachable_database_is_a_clear_retriable_error() -> None:
    bad = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailableError, match="ONCEPIPE_DATABASE_URL"):
        connect(bad)


@pytest.mark.faults
def test_postgres_restart_keeps_committed_data(services: Services, database_url: str) -> None:
    _, postgres = services.require_native()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survivors (id int PRIMARY KEY)")
        conn.execute("INSERT INTO survivors SELECT generate_series(1, 1000)")
    postgres.restart()
    with psycopg.connect(database_url) as conn:
        count = conn.execute("SELECT count(*) FROM survivors").fetchone()
    assert count == (1000,)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _infra(
    command: str,
    state: Path,
    port: int,
    *,
    clone: Path = REPO_ROOT,
    user: str | None = None,
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    """``python -m infra COMMAND postgres`` (what `make up` runs) in ``clone``."""
    env = {
        **os.environ,
        "ONCEPIPE_INFRA_STATE_DIR": str(state),
        "ONCEPIPE_INFRA_POSTGRES_PORT": str(port),
    }
    return subprocess.run(
        [python, "-m", "infra", command, "postgres"],
        cwd=clone, env=env, user=user, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def _python_for(user: str) -> str:
    """An interpreter ``user`` may run (ours may sit in root's private folder too)."""
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for python in candidates:
        probe = [python, "-c", "import sys; assert sys.version_info >= (3, 11)"]
        with contextlib.suppress(OSError):
            if subprocess.run(probe, user=user, capture_output=True, check=False).returncode == 0:
                return python
    pytest.fail(f"no Python >= 3.11 that {user} may run among {candidates}")


def _server_port(port: int) -> int:
    with psycopg.connect(f"postgresql://oncepipe@127.0.0.1:{port}/oncepipe") as conn:
        row = conn.execute("SHOW port").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def private_folder() -> Iterator[Path]:
    """A fresh 0700 folder, as /root is, outside pytest's own temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="oncepipe-private-"))
    assert folder.stat().st_mode & 0o777 == 0o700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("account", ["this user", "an unprivileged user"])
def test_make_up_works_from_a_clone_under_a_private_folder(
    private_folder: Path, account: str
) -> None:
    # The clone's infra package (standard library only) in the private folder, as a user's own.
    clone = private_folder / "clone"
    shutil.copytree(REPO_ROOT / "infra", clone / "infra")
    state = clone / ".state"
    user, python = None, sys.executable
    if account == "an unprivileged user" and os.geteuid() == 0:
        user = "nobody"
        python = _python_for(user)
        owner = pwd.getpwnam(user)
        for path in [private_folder, *private_folder.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    home = Postgres(replace(layout(), state_dir=state, postgres_port=port)).home
    try:
        up = _infra("up", state, port, clone=clone, user=user, python=python)
        assert up.returncode == 0, up.stderr
        assert _server_port(port) == port
    finally:
        clean = _infra("clean", state, port, clone=clone, user=user, python=python)
    assert clean.returncode == 0, clean.stderr
    if user is None:
        assert not home.exists(), "`infra clean` left the cluster behind"


def test_a_moved_port_is_applied_and_refused_while_the_old_one_runs(
    private_folder: Path,
) -> None:
    state = private_folder / "clone" / ".state"
    old, new = _free_port(), _free_port()
    try:
        assert _infra("up", state, old).returncode == 0
        refused = _infra("up", state, new)
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            f"error: postgres already runs on port {old}, not {new}: stop it with `make down` "
            "(python -m infra down postgres), then start it on the new port"
        ]
        assert _server_port(old) == old  # untouched
        assert _infra("down", state, new).returncode == 0
        moved = _infra("up", state, new)
        assert moved.returncode == 0, moved.stderr
        assert _server_port(new) == new
        assert not port_open(old)
    finally:
        _infra("clean", state, new)
    assert not port_open(new), "a server was left running"
