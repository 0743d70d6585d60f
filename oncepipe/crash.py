"""Named crash points: test-only places where a worker SIGKILLs itself.

``ONCEPIPE_CRASH_POINTS=relay.after_ack`` makes the relay die right after the broker
acknowledged a batch and before it marks the rows published, so fault tests can prove what a
crash at exactly that moment does. Off by default, and a set lookup when off.

Public names: ``crash_point``.
"""

from __future__ import annotations

import os
import signal
import sys

from oncepipe.settings import Settings

__all__ = ["crash_point"]


def crash_point(settings: Settings, name: str) -> None:
    """SIGKILL this process if ``name`` is one of the configured crash points."""
    if name not in settings.crash_points:
        return
    # Write straight to the fd: a SIGKILL gives buffered loggers no chance to flush.
    os.write(sys.stderr.fileno(), f"oncepipe: crash point {name} reached, SIGKILL\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
