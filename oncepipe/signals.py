"""How a worker process stops: SIGTERM or SIGINT, at any moment of its life, ends in exit 0.

Two stages. Before a worker holds anything (while the console script imports the heavy
libraries), a stop signal exits at once: ``exit_at_once_on_stop``. Once the worker runs, a
stop signal asks it to finish the batch in flight and leave: ``install_stop_handlers``. Both
live here, below the workers and the command line, so that any process (a worker, the demo's
naive consumer) stops the same way. Standard library only: the console script imports this
module before anything else.

Public names: ``STOP_SIGNALS``, ``exit_at_once_on_stop``, ``install_stop_handlers``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

__all__ = ["STOP_SIGNALS", "exit_at_once_on_stop", "install_stop_handlers"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_now(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_at_once_on_stop() -> None:
    """Exit 0 on SIGTERM/SIGINT until ``install_stop_handlers`` replaces this.

    Also unblocks both signals: a mask inherited from the parent would defer them forever.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, _exit_now)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def install_stop_handlers(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM and SIGINT: the worker finishes its batch, then exits 0.

    Replaces the start-up guard (``exit_at_once_on_stop``): call it before the worker joins or
    holds anything.
    """

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
