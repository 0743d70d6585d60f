"""CPU seconds spent by the PostgreSQL server and the Kafka broker, read from ``/proc``.

The services are the ones ``python -m infra`` runs (their pids come from it). PostgreSQL's
CPU is the postmaster's plus every live backend's plus what its exited children left in
``cutime``/``cstime``; the broker is one JVM, whose threads ``/proc/<pid>/stat`` already sums.
Where ``/proc`` or a pid is missing the figure is simply absent.

Public names: ``ServiceCpu``.
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.services import all_services

__all__ = ["ServiceCpu"]

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU seconds, waited-for children's CPU seconds) of ``pid``."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime) / _TICKS, (cutime + cstime) / _TICKS


def _children(parent: int) -> list[int]:
    pids = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == parent:
                pids.append(int(entry.name))
    return pids


class ServiceCpu:
    """Snapshots of the services' CPU seconds; subtract two to charge a run."""

    def __init__(self) -> None:
        services = all_services()
        self._pids = {name: service.pid() for name, service in services.items()}

    def snapshot(self) -> dict[str, float]:
        """CPU seconds so far, by service name ("postgres", "kafka")."""
        out: dict[str, float] = {}
        for name, pid in self._pids.items():
            stat = _stat(pid) if pid else None
            if stat is None or pid is None:
                continue
            total = stat[1] + stat[2]
            if name == "postgres":
                for child in _children(pid):
                    child_stat = _stat(child)
                    total += child_stat[1] if child_stat else 0.0
            out[name] = total
        return out
