"""The processes the demo starts: ``oncepipe`` workers and one-shot commands, and its own.

Every process gets the demo's own Kafka and PostgreSQL settings in its environment, so that a
demo configured by flags or by environment drives the same services throughout.

Public names: ``DEMO``, ``ONCEPIPE``, ``Workers``, ``say``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from infra.workers import Child, Supervisor
from oncepipe.settings import Settings

__all__ = ["DEMO", "ONCEPIPE", "Workers", "say"]

ONCEPIPE = [sys.executable, "-c", "from cli.entry import run; run()"]
# The demo's own commands (the simulator, the naive consumer); not part of the product.
DEMO = [sys.executable, "-m", "demo"]
# Workers import the demo's catalog handler (``--handler demo.items:...``) from this checkout.
_CHECKOUT = str(Path(__file__).resolve().parent.parent)


def say(message: str) -> None:
    """Narrate a step on stderr."""
    print(f"[demo] {message}", file=sys.stderr, flush=True)


class Workers:
    """The processes the demo starts; all of them stopped at the end, whatever happens."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self._env = {
            **os.environ,
            # Bootstrap servers and security; secrets as their *_FILE paths, never values.
            **settings.kafka_environment(),
            "ONCEPIPE_DATABASE_URL": settings.database_url.get_secret_value(),
            "ONCEPIPE_LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join(filter(None, [_CHECKOUT, os.environ.get("PYTHONPATH")])),
        }
        self._logs = logs
        self._processes = Supervisor(self._env)
        self.kills: list[str] = []

    def start(
        self,
        name: str,
        *args: str,
        program: list[str] = ONCEPIPE,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start ``oncepipe ARGS`` (or ``program ARGS``) as a named process, logging to a file.

        ``env`` adds to the demo's environment. A name started again appends to the same log.
        """
        return self._processes.start(
            name, [*program, *args], env=env, log=self._logs / f"{name}.log", append=True
        )

    def run(self, *args: str, timeout: float = 120) -> str:
        """Run ``oncepipe ARGS`` to its end and return its stdout; raise if it fails."""
        result = subprocess.run(
            [*ONCEPIPE, *args],
            env=self._env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`oncepipe {shlex.join(args)}` exited with {result.returncode}: "
                f"{result.stderr.strip()[-2000:]}"
            )
        return result.stdout

    def kill(self, name: str) -> None:
        """SIGKILL a worker, as a crash would."""
        self._processes.latest(name).kill()
        self.kills.append(f"SIGKILL {name}")

    def stop(self, name: str, timeout: float = 30) -> None:
        """SIGTERM one worker and wait for it to end."""
        child = self._processes.latest(name)
        if child.alive():
            child.stop(timeout)

    def wait(self, name: str, timeout: float) -> int:
        """Wait for a process that ends on its own (a simulator)."""
        code = self._processes.latest(name).wait(timeout)
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}; see {self._logs / name}.log")
        return code

    def stop_all(self) -> None:
        """SIGTERM every process still running; SIGKILL what does not stop in 30 s."""
        self._processes.stop_all(grace=30)
