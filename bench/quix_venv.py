"""Quix Streams in its own virtualenv, ``bench/.venv-quix`` (git-ignored), for the peer suite.

The peer is installed apart from oncepipe so that neither constrains the other's
dependencies. ``ensure_quix`` creates the virtualenv and installs ``REQUIREMENTS`` only when
it is missing or cannot import them; it never raises for an install or import failure: it
returns the reason, which the suite writes into its results instead of figures.

Public names: ``QUIX_VENV``, ``REQUIREMENTS``, ``QuixEnv``, ``ensure_quix``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["QUIX_VENV", "REQUIREMENTS", "QuixEnv", "ensure_quix"]

QUIX_VENV = Path(__file__).resolve().parent / ".venv-quix"
APP = Path(__file__).resolve().parent / "peer_quix_app.py"
# The PostgreSQL sink needs the extra (psycopg2); the app decodes Avro with fastavro.
REQUIREMENTS = ("quixstreams[postgresql]>=3.20,<4", "fastavro>=1.9,<2")
_PROBE = (
    "import fastavro, psycopg2, quixstreams; "
    "from quixstreams.sinks.community.postgresql import PostgreSQLSink; "
    "print(quixstreams.__version__)"
)
_TAIL = 1500


@dataclass(frozen=True)
class QuixEnv:
    """The peer's interpreter and version, or why there is none."""

    python: Path
    version: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the app can run."""
        return not self.error


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TAIL else "..." + text[-_TAIL:]


def _probe(python: Path) -> tuple[str, str]:
    """(version, "") when the virtualenv imports everything, else ("", the error)."""
    if not python.exists():
        return "", f"{python} does not exist"
    done = subprocess.run(
        [str(python), "-W", "ignore", "-c", _PROBE],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode == 0:
        return done.stdout.strip().splitlines()[-1], ""
    return "", f"import failed: {_tail(done.stderr)}"


def _install(venv: Path) -> str:
    """Create ``venv`` afresh and install ``REQUIREMENTS``; "" or what failed."""
    shutil.rmtree(venv, ignore_errors=True)
    steps = (
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", *REQUIREMENTS],
    )  # fmt: skip
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(step[:4])} ...` failed: {exc}"
        if done.returncode != 0:
            return f"`{' '.join(step[:4])} ...` exited {done.returncode}: {_tail(done.stderr)}"
    return ""


def ensure_quix(venv: Path = QUIX_VENV) -> QuixEnv:
    """The peer's virtualenv, installed first if it is missing or broken."""
    python = venv / "bin" / "python"
    version, error = _probe(python)
    if error:
        print(f"bench: installing {', '.join(REQUIREMENTS)} into {venv}", file=sys.stderr)
        failed = _install(venv)
        if failed:
            return QuixEnv(python, error=f"Quix Streams could not be installed: {failed}")
        version, error = _probe(python)
    return QuixEnv(python, version, error and f"Quix Streams does not import: {error}")
