"""Debian packages the services and tools need, installed with apt-get when root.

Public names: ``apt_install``, ``ensure_tool``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from infra.process import ServiceError

__all__ = ["apt_install", "ensure_tool"]


def apt_install(package: str, *, hint: str) -> None:
    """``apt-get install package`` (root only); ``hint`` says what to do otherwise."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError(hint)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")


def ensure_tool(command: str, package: str | None = None) -> str:
    """The path of ``command``, installing Debian's ``package`` (default: same name) if missing."""
    found = shutil.which(command)
    if found is not None:
        return found
    package = package or command
    hint = f"{command} not found: install it (Debian: apt-get install {package})"
    apt_install(package, hint=hint)
    found = shutil.which(command)
    if found is None:
        raise ServiceError(f"installed {package} but found no {command} on PATH")
    return found
