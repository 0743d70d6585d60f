"""Named stall points: test-only places where a worker SIGSTOPs itself, once.

A stalled member stops heartbeating; the broker evicts it after ``session.timeout.ms`` and a
new owner takes its partitions. Resumed with SIGCONT, the worker goes on exactly where it
stopped, which is what a zombie does, so fault tests can prove the offset fence refuses it.
``ONCEPIPE_CONSUMER_STALL_POINTS`` is empty by default, and a set lookup when empty.

Public names: ``stall_point``.
"""

from __future__ import annotations

import os
import signal
import sys

from consumers.settings import ConsumerSettings

__all__ = ["stall_point"]

_stalled: set[str] = set()


def stall_point(settings: ConsumerSettings, name: str) -> None:
    """SIGSTOP this process the first time it reaches ``name``, if that point is configured."""
    if name not in settings.stall_points or name in _stalled:
        return
    _stalled.add(name)
    os.write(sys.stderr.fileno(), f"oncepipe: stall point {name} reached, SIGSTOP\n".encode())
    os.kill(os.getpid(), signal.SIGSTOP)
