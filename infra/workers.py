"""Worker processes for tests, chaos runs, benchmarks and the demo: one supervisor.

A ``Supervisor`` starts named processes (``oncepipe`` workers, the simulator, helper programs)
with an environment and a log file, and stops them all at the end: SIGTERM at once, then
SIGKILL for whatever outlives the grace. Each start returns a ``Child``: signal it, stop it,
kill it (as a crash would), wait for it, read its log. Restart rules, readiness lines and
what a death means stay with the caller; the process handling is here.

Public names: ``Child``, ``Supervisor``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from infra.process import process_state, send_signal

__all__ = ["Child", "Supervisor"]


@dataclass(eq=False)  # compared and hashed by identity: one per process started
class Child:
    """One started process; its output goes to ``log_path`` (inherited when None).

    Started with ``stdout_pipe``, its stdout is read with ``output_lines`` instead and only
    its stderr goes to the log.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    @property
    def exit_code(self) -> int | None:
        """The exit code once it ended (``-N`` for death by signal N), None while it runs."""
        return self.popen.poll()

    @property
    def killed_by(self) -> signal.Signals | None:
        """The signal that ended it, None while it runs or when it exited by itself."""
        code = self.exit_code
        return signal.Signals(-code) if code is not None and code < 0 else None

    def alive(self) -> bool:
        """True while the process runs (stopped by SIGSTOP counts as running)."""
        return self.popen.poll() is None

    def stopped(self) -> bool:
        """True while the process is stopped (state T or t in /proc)."""
        return process_state(self.pid) in {"T", "t"}

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` if the process still runs (not yet reaped, so the pid is still its)."""
        if self.alive():
            send_signal(self.pid, signum)

    def terminate(self) -> None:
        """Ask it to stop: SIGCONT (a stopped process could not act on it), then SIGTERM."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for its end and return the exit code; ``subprocess.TimeoutExpired`` if not."""
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; ``subprocess.TimeoutExpired`` when it outlives ``timeout``."""
        self.terminate()
        return self.wait(timeout)

    def kill(self, timeout: float = 10.0) -> int:
        """SIGKILL, as a crash would, and reap; returns the exit code.

        No SIGCONT first: SIGKILL ends a stopped process too, and one let go on for even a
        moment could pass the point a test stopped it at.
        """
        self.signal(signal.SIGKILL)
        return self.wait(timeout)

    def output_lines(self) -> Iterator[str]:
        """Its stdout line by line, as each line arrives, until it closes (``stdout_pipe``)."""
        if self.popen.stdout is None:
            raise RuntimeError(f"{self.name} was started without stdout_pipe")
        for raw in self.popen.stdout:
            yield raw.decode(errors="replace")

    def text(self) -> str:
        """Everything logged so far ("" without a log file)."""
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines logged."""
        return "\n".join(self.text().splitlines()[-lines:])


class Supervisor:
    """Starts named processes and stops every one still running at the end.

    ``env`` is every child's base environment (by default the caller's as it is at each
    start, so a variable set after the supervisor was made still reaches the next child); a
    start may add to it. Used as a context manager, leaving the block stops them all.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        grace: float = 30.0,
    ) -> None:
        self.env = None if env is None else dict(env)
        self.cwd = cwd
        self.grace = grace
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        append: bool = False,
        stdout_pipe: bool = False,
    ) -> Child:
        """Start ``argv`` with the base environment plus ``env``, stdin from /dev/null.

        Its stdout and stderr go to ``log`` (truncated, or appended to with ``append``);
        without one they are this process's own. With ``stdout_pipe`` its stdout is a pipe
        for ``Child.output_lines`` and only its stderr goes to ``log``.
        """
        child_env = {**(os.environ if self.env is None else self.env), **(env or {})}
        stdout = subprocess.PIPE if stdout_pipe else None
        with contextlib.ExitStack() as files:
            out = None if log is None else files.enter_context(log.open("ab" if append else "wb"))
            popen = subprocess.Popen(
                list(argv),
                env=child_env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout or out,
                stderr=out if stdout_pipe or out is None else subprocess.STDOUT,
            )
        child = Child(name, popen, log)
        self.children.append(child)
        return child

    def latest(self, name: str) -> Child:
        """The child most recently started as ``name``."""
        for child in reversed(self.children):
            if child.name == name:
                return child
        raise KeyError(name)

    def running(self) -> list[Child]:
        """The children still running."""
        return [child for child in self.children if child.alive()]

    def stop_all(self, grace: float | None = None) -> dict[Child, int | None]:
        """SIGTERM every running child at once, then SIGKILL each one that outlives ``grace``.

        At once, so that one stopping does not hand its work to the next. Returns each
        child's exit code after the SIGTERM, None for one that had to be killed.
        """
        grace = self.grace if grace is None else grace
        stopping = self.running()
        for child in stopping:
            child.terminate()
        codes: dict[Child, int | None] = {}
        for child in stopping:
            try:
                codes[child] = child.wait(grace)
            except subprocess.TimeoutExpired:
                child.kill()
                codes[child] = None
        return codes

    def kill_all(self) -> None:
        """SIGKILL every running child and reap it."""
        for child in self.running():
            child.kill()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
