"""The oncepipe CLI's admin commands, run as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ONCEPIPE = str(Path(sys.executable).with_name("oncepipe"))


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ONCEPIPE, *args], capture_output=True, text=True, env={**os.environ, **env}, check=False
    )


def test_migrate_json_lists_nothing_on_an_up_to_date_database(database_url: str) -> None:
    result = run_cli("migrate", "--json", env={"ONCEPIPE_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"dry_run": False, "migrations": []}


def test_unreachable_database_exits_1_with_one_line_saying_what_to_check() -> None:
    result = run_cli("migrate", env={"ONCEPIPE_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ONCEPIPE_DATABASE_URL" in lines[0]


def test_bad_configuration_exits_2() -> None:
    result = run_cli("config", env={"ONCEPIPE_LOG_LEVEL": "LOUD"})
    assert result.returncode == 2
    assert "ONCEPIPE_LOG_LEVEL" in result.stderr


def test_config_masks_the_password() -> None:
    result = run_cli("config", "--json", env={"ONCEPIPE_DATABASE_URL": "postgresql://u:pw@h:1/d"})
    assert result.returncode == 0
    assert json.loads(result.stdout)["database_url"] == "postgresql://u:***@h:1/d"
