"""Process plumbing shared by the service controllers: pid files, readiness, log tails."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "ServiceError",
    "child_pids",
    "pid_alive",
    "port_open",
    "process_state",
    "read_pid",
    "send_signal",
    "tail",
    "wait_until",
]


class ServiceError(RuntimeError):
    """A native service could not be installed, started or stopped; the message says why."""


def read_pid(pid_file: Path) -> int | None:
    """Return the pid recorded in ``pid_file`` if that process is still alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    """True when ``pid`` names a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child we have not reaped yet still answers kill(0); its state says "Z".
    return process_state(pid) != "Z"


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` in /proc ("R", "S", "T" stopped, "Z" zombie...), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the state follows its last ")".
    return stat.rsplit(")", 1)[1].split()[0]


def child_pids(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (read from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and fields[0] != "Z":
                children.append(int(stat.parent.name))
    return children


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid``, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``predicate`` until true; on timeout raise with the service's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    detail = f"\n--- last lines of {log} ---\n{tail(log)}" if log else ""
    raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
