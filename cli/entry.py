"""The ``oncepipe`` console script: a worker catches SIGTERM from its first line on.

Importing the CLI (typer, confluent-kafka, psycopg, pydantic, the handlers) is most of a
worker's start-up, a second or more on a busy machine. A SIGTERM in that window used to end the
worker by the signal (exit -15). This module imports only the standard library and, for the
worker commands, installs a handler that exits 0 at once before that import: nothing is joined
or held yet. The worker swaps it for its graceful handler (``install_stop_handlers``) before it
joins anything, so a SIGTERM at any moment of its life ends in exit 0.

Public names: ``run``.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

__all__ = ["run"]

# Long-running workers a supervisor stops with SIGTERM; other commands keep the defaults
# (Ctrl-C on `simulate` or `migrate` is an interruption, exit 1, not a clean stop).
WORKER_COMMANDS = frozenset({"consume", "relay"})
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _worker_command(argv: list[str]) -> bool:
    # The root command has no option that takes a value, so the first word is the command.
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    return command in WORKER_COMMANDS


def _exit_before_start(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def guard_start_up(argv: list[str]) -> bool:
    """For a worker command, exit 0 on SIGTERM/SIGINT until the worker installs its own handler.

    Also unblocks both signals: a mask inherited from the parent would defer them forever.
    Returns True when the guard was installed.
    """
    if not _worker_command(argv):
        return False
    for signum in STOP_SIGNALS:
        signal.signal(signum, _exit_before_start)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return True


def run() -> None:
    """Entry point of the ``oncepipe`` command (see ``cli.main.run``)."""
    guard_start_up(sys.argv[1:])
    from cli.main import run as run_cli  # noqa: PLC0415 - heavy, now interruptible

    run_cli()
