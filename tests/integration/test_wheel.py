"""The built wheel is the product alone, and it works installed in a fresh virtualenv.

It ships ``schemas``, ``oncepipe`` (its SQL migrations included), ``producers``, ``ingest``,
``consumers`` and ``cli``: no demo, benchmark, dev-services or test code. Installed outside this
checkout, ``oncepipe migrate`` migrates an empty database and the workers' ``--help`` works.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.database import create_database, drop_database, with_database
from tests.fixtures.services import Services

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PRODUCT = {"schemas", "oncepipe", "producers", "ingest", "consumers", "console", "cli"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip wheel`` builds from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("oncepipe-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel (and its dependencies) installed: its bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", str(wheel)], check=True, timeout=600)
    return venv / "bin"


@pytest.fixture
def empty_database(services: Services) -> Iterator[str]:
    """A database with no table at all, dropped afterwards."""
    admin = with_database(services.database_url, "postgres")
    name = f"oncepipe_wheel_{uuid.uuid4().hex[:8]}"
    create_database(admin, name)
    try:
        yield with_database(services.database_url, name)
    finally:
        drop_database(admin, name)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Outside the checkout and without PYTHONPATH: only what the wheel installed is importable.
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        command,
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_wheel_holds_the_product_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == PRODUCT
    assert any(name.startswith("oncepipe/sql/0001_") for name in names)
    assert any(name.startswith("schemas/avro/") and name.endswith(".avsc") for name in names)


def test_the_installed_wheel_migrates_and_serves_help(
    installed: Path, empty_database: str, tmp_path: Path
) -> None:
    env = {"ONCEPIPE_DATABASE_URL": empty_database}
    migrated = _run([str(installed / "oncepipe"), "migrate"], tmp_path, env)
    assert migrated.returncode == 0, migrated.stderr
    assert "0001_oncepipe_schema" in migrated.stdout
    with psycopg.connect(empty_database) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"outbox", "consumer_offsets"} <= tables
    for words in (["consume", "--help"], ["dlq", "--help"], ["relay", "--help"]):
        shown = _run([str(installed / "oncepipe"), *words], tmp_path, env)
        assert shown.returncode == 0, shown.stderr
        assert "Usage: oncepipe" in shown.stdout
    absent = _run(
        [str(installed / "python"), "-c", "import importlib.util as u; "
         "print([m for m in ('demo', 'infra', 'bench', 'tests') if u.find_spec(m)])"],
        tmp_path, env,
    )  # fmt: skip
    assert absent.stdout.strip() == "[]", absent.stdout + absent.stderr
