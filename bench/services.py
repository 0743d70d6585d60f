"""CPU seconds and peak memory of the PostgreSQL server and the Kafka broker, from ``/proc``.

The services are the ones ``python -m infra`` runs (their pids come from it). PostgreSQL's
CPU is the postmaster's plus every live backend's plus what its exited children left in
``cutime``/``cstime``; the broker is one JVM, whose threads ``/proc/<pid>/stat`` already sums.
Where ``/proc`` or a pid is missing the figure is simply absent.

Peak memory is ``VmHWM`` (the resident set's high-water mark) of the benchmark process itself
("client"), of the broker's JVM and of the largest PostgreSQL process (postmaster or one
backend; a backend's resident set includes the shared buffers it touched, so the processes
are not summed). ``VmHWM`` counts from a process's start, so before a run every one of them is
reset to its current resident set by writing ``5`` to ``/proc/<pid>/clear_refs`` (Linux 4.0+,
needs the right to write there: the same user or root). A process whose mark could not be
reset gets no figure rather than one counted since its start; a backend started during the
run counts from its own start.

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


def _hwm_mb(pid: int | str) -> float | None:
    """``VmHWM`` of ``pid`` in MB (10^6 bytes), or None."""
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return None  # a kernel thread or a zombie


def _reset_hwm(pid: int | str) -> bool:
    """Reset ``pid``'s ``VmHWM`` to its current resident set; False when not allowed."""
    try:
        (_PROC / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _children(parent: int) -> list[int]:
    pids = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == parent:
                pids.append(int(entry.name))
    return pids


class ServiceCpu:
    """Snapshots of the services' CPU seconds (subtract two to charge a run); peak memory."""

    def __init__(self, kafka_pid: int | None = None) -> None:
        """``kafka_pid``: charge that broker instead of ``python -m infra``'s (a secured run)."""
        services = all_services()
        self._pids = {name: service.pid() for name, service in services.items()}
        if kafka_pid is not None:
            self._pids["kafka"] = kafka_pid
        self._reset: set[str] = set()

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

    def _processes(self) -> dict[str, list[int | str]]:
        """The processes behind each figure: "client" is this one."""
        out: dict[str, list[int | str]] = {"client": ["self"]}
        for name, pid in self._pids.items():
            if pid is not None and _stat(pid) is not None:
                out[name] = [pid, *(_children(pid) if name == "postgres" else [])]
        return out

    def reset_peak_rss(self) -> None:
        """Start a run: reset the high-water mark of every process it will be charged."""
        self._reset = set()
        for name, pids in self._processes().items():
            done = [_reset_hwm(pid) for pid in pids]  # every one, even after a refusal
            if all(done):
                self._reset.add(name)

    def peak_rss_mb(self) -> dict[str, float]:
        """End of a run: the peak resident set since ``reset_peak_rss``, in MB, by name.

        "postgres" is the largest PostgreSQL process, not a sum; processes whose mark was
        not reset are left out.
        """
        out: dict[str, float] = {}
        for name, pids in self._processes().items():
            if name not in self._reset:
                continue
            marks = [mb for pid in pids if (mb := _hwm_mb(pid)) is not None]
            if marks:
                out[name] = max(marks)
        return out
