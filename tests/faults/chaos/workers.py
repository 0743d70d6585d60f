"""Worker processes of a chaos run: consumers, relays and simulators, with a restart policy.

Every worker is an ``oncepipe`` subprocess writing JSON log lines to its own file, started
and stopped by the shared process supervisor (``infra.workers``). A fault marks the worker it
acts on as held; the supervision thread restarts any other worker that died (a crash point
that fired, a simulator that lost PostgreSQL) and records why it died.

Public names: ``Proc``, ``WorkerSet``, ``Exit``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infra.paths import REPO_ROOT
from infra.workers import Child, Supervisor

__all__ = ["Exit", "Proc", "Role", "WorkerSet"]

# "second_consumer": a member of the second consumer group (the second_group fault); the
# member faults leave it alone, the service faults hit it like any worker.
Role = Literal["consumer", "second_consumer", "relay", "simulator"]
ONCEPIPE = str(Path(sys.executable).with_name("oncepipe"))
# Deliberately broken workers run the same CLI behind this shim (see defects.py).
DEFECT_SHIM = [sys.executable, "-m", "tests.faults.chaos.defects"]
# The log line after which a worker has installed its SIGTERM handler and joined the pipeline.
READY_EVENTS = {
    "consumer": 'consumer started"',  # "queue consumer started" in queue mode
    "second_consumer": 'consumer started"',
    "relay": '"relay starting"',
    "simulator": "",
}
# A simulator that lost PostgreSQL fails at once on restart until it is back: do not spin.
RESTART_DELAY_S = {"consumer": 0.0, "second_consumer": 0.0, "relay": 0.0, "simulator": 2.0}
# The exit code recorded for a worker that did not stop within the timeout (then SIGKILLed).
UNSTOPPED = -999


@dataclass(frozen=True)
class Exit:
    """A worker that ended on its own (not stopped by the harness), and why."""

    name: str
    role: Role
    code: int
    crash_point: str
    at_s: float
    tail: str

    @property
    def crashed_at_point(self) -> bool:
        """True when it was SIGKILLed by its own crash point."""
        return self.code == -signal.SIGKILL and bool(self.crash_point)


@dataclass
class Proc:
    """One worker process (restarts keep the name and start a new generation)."""

    name: str
    role: Role
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    child: Child | None = None  # the current generation's process
    generation: int = 0
    held: bool = False  # a fault is acting on it: the supervisor keeps its hands off
    retired: bool = False  # removed from the group (or finished): never restarted
    crash_point: str = ""
    stall_point: str = ""
    started_at: float = 0.0
    down_since: float | None = None  # when the supervisor first saw it dead

    @property
    def log_path(self) -> Path:
        """This generation's log file."""
        return self.log_dir / f"{self.name}.{self.generation}.log"

    @property
    def pid(self) -> int:
        """The current process id."""
        assert self.child is not None
        return self.child.pid

    def alive(self) -> bool:
        """True while the process runs (stopped counts as running)."""
        return self.child is not None and self.child.alive()

    def stopped(self) -> bool:
        """True while the process is stopped by SIGSTOP (state T in /proc)."""
        return self.child is not None and self.child.stopped()

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` if the process still runs."""
        if self.child is not None:
            self.child.signal(signum)

    def ready(self) -> bool:
        """True once this generation logged that it runs (signal handlers installed)."""
        try:
            return READY_EVENTS[self.role] in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def tail(self, lines: int = 15) -> str:
        """The last lines of this generation's log."""
        return "" if self.child is None else self.child.tail(lines)


@dataclass
class WorkerSet:
    """Starts, restarts and supervises the workers of one run."""

    base_env: dict[str, str]
    log_dir: Path
    started: float = field(default_factory=time.monotonic)
    procs: dict[str, Proc] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    # (worker.generation, exit code, had it finished starting when SIGTERM came)
    clean_stops: list[tuple[str, int, bool]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    on_exit: Callable[[Proc, Exit], None] | None = None
    processes: Supervisor = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.processes = Supervisor(self.base_env, cwd=REPO_ROOT)

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def add(self, name: str, role: Role, argv: list[str], env: dict[str, str]) -> Proc:
        """Register and start a worker."""
        with self.lock:
            proc = Proc(name, role, argv, env, self.log_dir)
            self.procs[name] = proc
            self.start(proc)
            return proc

    def start(
        self,
        proc: Proc,
        *,
        crash_point: str = "",
        stall_point: str = "",
        argv: list[str] | None = None,
    ) -> None:
        """Start (a new generation of) ``proc``; crash and stall points last one generation."""
        with self.lock:
            if proc.alive():
                raise RuntimeError(f"{proc.name} still runs")
            proc.generation += 1
            proc.crash_point, proc.stall_point = crash_point, stall_point
            if argv is not None:
                proc.argv = argv
            env = {
                **proc.env,
                "ONCEPIPE_CRASH_POINTS": crash_point,
                "ONCEPIPE_CONSUMER_STALL_POINTS": stall_point,
            }
            proc.child = self.processes.start(proc.name, proc.argv, env=env, log=proc.log_path)
            proc.started_at = self.elapsed()
            proc.down_since = None

    def of(self, role: Role) -> list[Proc]:
        """The live, not retired workers of ``role``."""
        with self.lock:
            return [p for p in self.procs.values() if p.role == role and not p.retired]

    def kill(self, proc: Proc) -> None:
        """SIGKILL and reap."""
        proc.signal(signal.SIGCONT)
        if proc.child is not None:
            proc.child.kill(30)

    def terminate(self, proc: Proc, timeout: float = 90.0) -> int:
        """SIGTERM (a clean stop), wait, and record the exit code; SIGKILL after ``timeout``."""
        return self._await_stop(proc, self._send_stop(proc), timeout)

    @staticmethod
    def _send_stop(proc: Proc) -> bool:
        """SIGCONT and SIGTERM; whether it had finished starting."""
        ready = proc.ready()
        if proc.child is not None:
            proc.child.terminate()
        return ready

    def _await_stop(self, proc: Proc, ready: bool, timeout: float = 90.0) -> int:
        assert proc.child is not None
        try:
            code = proc.child.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            code = UNSTOPPED
        self._record_stop(proc, code, ready)
        return code

    def _record_stop(self, proc: Proc, code: int, ready: bool) -> None:
        self.clean_stops.append((f"{proc.name}.{proc.generation}", code, ready))

    # -- supervision ---------------------------------------------------------------------
    def supervise(self, interval: float = 0.5) -> None:
        """Start the supervisor thread."""
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._thread.start()

    def stop_supervising(self) -> None:
        """Stop the supervisor thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.check_once()

    def check_once(self) -> None:
        """Record and restart every worker that ended on its own."""
        with self.lock:
            for proc in list(self.procs.values()):
                if proc.held or proc.retired or proc.child is None or proc.alive():
                    continue
                code = proc.child.wait()  # ended: its exit code
                if proc.down_since is None:
                    proc.down_since = self.elapsed()
                    if proc.role == "simulator" and code == 0:
                        proc.retired = True  # finished its submissions
                        continue
                    ended = Exit(proc.name, proc.role, code, proc.crash_point,
                                 proc.down_since, proc.tail())  # fmt: skip
                    self.exits.append(ended)
                    if self.on_exit is not None:
                        self.on_exit(proc, ended)
                if self.elapsed() - proc.down_since >= RESTART_DELAY_S[proc.role]:
                    self.start(proc)

    def stop_all(self) -> None:
        """SIGTERM every worker at once (recording exit codes); SIGKILL what does not stop.

        At once, not one after another: a standby relay would otherwise take the leader lock
        from the relay stopped before it and publish what that one skipped, after the drain
        (the end state would hide a relay defect)."""
        with self.lock:
            for proc in self.procs.values():
                proc.held = True
            for proc in self.procs.values():
                if proc.alive() and proc.role == "simulator":
                    self.kill(proc)
            stopping = [(proc, proc.ready()) for proc in self.procs.values() if proc.alive()]
            codes = self.processes.stop_all(grace=90.0)
            for proc, ready in stopping:
                assert proc.child is not None
                # One that ended before the SIGTERM went out is not in ``codes``.
                code = codes[proc.child] if proc.child in codes else proc.child.wait()
                self._record_stop(proc, UNSTOPPED if code is None else code, ready)
