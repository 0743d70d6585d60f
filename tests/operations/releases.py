"""A previous release installed into its own virtualenv, for the rolling-upgrade drill.

``git archive`` of the release's commit, then ``pip install`` of that tree into a venv under
the state folder (kept per commit: the first build takes a couple of minutes, later runs reuse
it). ``ONCEPIPE_PREVIOUS_RELEASE`` names the commit or tag; the default is the last commit of
main before migrations 0011 to 0014 (proposed tag ``v0.10.0``, see CHANGELOG.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.paths import REPO_ROOT, layout

__all__ = ["PREVIOUS_RELEASE", "previous_release"]

PREVIOUS_RELEASE = os.environ.get("ONCEPIPE_PREVIOUS_RELEASE", "ec1478b")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def previous_release(ref: str = PREVIOUS_RELEASE) -> Path:
    """The ``oncepipe`` executable of release ``ref``, installed on first use."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    home = layout().state_dir / "releases" / commit[:7]
    executable = home / "venv" / "bin" / "oncepipe"
    if executable.exists():
        return executable
    source = home / "src"
    source.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", commit], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home / "venv")], check=True)
    subprocess.run(
        [str(home / "venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         str(source)],
        check=True,
    )  # fmt: skip
    return executable
