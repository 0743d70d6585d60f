"""Bad inputs a new user tries, by family, and a runner of the real ``oncepipe`` command.

Shared by tests/integration/test_cli_errors.py and ``python -m tests.cli_error_table``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from demo.processes import DEMO

ONCEPIPE = str(Path(sys.executable).with_name("oncepipe"))
SECRET = "Xk7-pw-5ecretQ"  # noqa: S105 - a distinctive fake password to search for
CLOSED_PORT = "1"  # nothing listens on 127.0.0.1:1

# Every command that reads the database URL, with arguments that get it that far.
DATABASE_COMMANDS: dict[str, list[str]] = {
    "config": ["config"],
    "config --json": ["config", "--json"],
    "migrate": ["migrate"],
    "offsets show": ["offsets", "show"],
    "inbox partitions": ["inbox", "partitions"],
    "relay": ["relay"],
    "consume": ["consume", "--group", "g", "--topic", "t.cli", "--handler", "clicks"],
    "simulate --mode outbox": ["simulate", "--mode", "outbox", "--count", "1", "--topic", "t.cli"],
    "dlq replay": ["dlq", "replay", "--topic", "t.cli", "--dry-run", "--yes"],
}
# Commands that only print the configuration: they work with any well-formed URL.
PRINTING = {"config", "config --json"}
# Daemons: they wait out an unreachable server instead of exiting.
DAEMONS = {"relay", "consume"}


def is_demo_command(args: Sequence[str]) -> bool:
    """True for the demo's ``simulate``: its own command line, not the product's ``oncepipe``."""
    return list(args[:1]) == ["simulate"]


def command_line(args: Sequence[str]) -> list[str]:
    """``oncepipe ARGS``, or ``python -m demo ARGS`` for the demo's ``simulate``."""
    return [*DEMO, *args] if is_demo_command(args) else [ONCEPIPE, *args]


@dataclass(frozen=True)
class Outcome:
    """One run of the command: what a user sees."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def first_line(self) -> str:
        """The first line printed on stderr (or stdout when stderr is empty)."""
        text = self.stderr.strip() or self.stdout.strip()
        return text.splitlines()[0] if text else ""


def run(args: Sequence[str], env: dict[str, str], timeout: float = 90) -> Outcome:
    """Run ``oncepipe args`` with ``env`` on top of the environment."""
    started = time.monotonic()
    result = subprocess.run(
        command_line(args),
        capture_output=True,
        text=True,
        env={**os.environ, "ONCEPIPE_LOG_FORMAT": "json", **env},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    return Outcome(
        tuple(args), result.returncode, result.stdout, result.stderr, time.monotonic() - started
    )


def run_all(runs: Sequence[tuple[Sequence[str], dict[str, str]]]) -> list[Outcome]:
    """Run several commands at once (each mostly waits on imports and sockets)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda item: run(*item), runs))


def dsn_forms(database_url: str) -> dict[str, str]:
    """The same working database, written in every form psycopg accepts, each with SECRET."""
    params = {k: str(v) for k, v in conninfo_to_dict(database_url).items()}
    user, host, port, dbname = params["user"], params["host"], params["port"], params["dbname"]
    return {
        "URL user:password": f"postgresql://{user}:{SECRET}@{host}:{port}/{dbname}",
        "URL ?password=": f"postgresql://{user}@{host}:{port}/{dbname}?password={SECRET}",
        "key=value password=": make_conninfo(database_url, password=SECRET),
    }


def bad_dsn_families(database_url: str) -> dict[str, tuple[str, int]]:
    """Connection strings that can never work, each with SECRET: family -> (URL, exit code)."""
    params = {k: str(v) for k, v in conninfo_to_dict(database_url).items()}
    host, port, dbname = params["host"], params["port"], params["dbname"]
    return {
        "malformed": (f"u:{SECRET} at somewhere", 2),
        "malformed key=value": (f"host={host} password={SECRET} dbname", 2),
        "port notaport": (f"postgresql://u:{SECRET}@{host}:notaport/{dbname}", 2),
        "sslmode=bogus": (f"host={host} port={port} password={SECRET} sslmode=bogus", 2),
        "unknown role": (f"postgresql://no_such_role:{SECRET}@{host}:{port}/{dbname}", 2),
        "unknown database": (f"postgresql://{params['user']}:{SECRET}@{host}:{port}/no_such_db", 2),
    }


def refused_dsn() -> str:
    """A well-formed URL whose server is down (a refused port): an outage, not configuration."""
    return f"postgresql://u:{SECRET}@127.0.0.1:{CLOSED_PORT}/d"
