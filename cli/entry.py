"""The ``oncepipe`` console script: a worker catches SIGTERM from its first line on.

Importing the CLI (typer, confluent-kafka, psycopg, pydantic, the handlers) is most of a
worker's start-up, a second or more on a busy machine. A SIGTERM in that window used to end the
worker by the signal (exit -15). This module imports only the standard library and
``oncepipe.signals`` (itself standard library only) and, for the worker commands, installs a
handler that exits 0 at once before that import: nothing is joined or held yet. The worker swaps
it for its graceful handler (``install_stop_handlers``) before it joins anything, so a SIGTERM
at any moment of its life ends in exit 0.

Public names: ``run``.
"""

from __future__ import annotations

import sys

from oncepipe.signals import exit_at_once_on_stop

__all__ = ["run"]

# Long-running workers a supervisor stops with SIGTERM; other commands keep the defaults
# (Ctrl-C on `migrate` or `dlq replay` is an interruption, exit 1, not a clean stop).
WORKER_COMMANDS = frozenset({"consume", "relay"})


def _worker_command(argv: list[str]) -> bool:
    # The root command has no option that takes a value, so the first word is the command.
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return command in WORKER_COMMANDS


def guard_start_up(argv: list[str]) -> bool:
    """For a worker command, exit 0 on SIGTERM/SIGINT until the worker installs its own handler.

    Returns True when the guard was installed.
    """
    if not _worker_command(argv):
        return False
    exit_at_once_on_stop()
    return True


def run() -> None:
    """Entry point of the ``oncepipe`` command (see ``cli.main.run``)."""
    guard_start_up(sys.argv[1:])
    from cli.main import run as run_cli  # noqa: PLC0415 - heavy, now interruptible

    run_cli()
