"""Debian packages the services and tools need, installed with apt-get when root.

Public names: ``apt_install``, ``ensure_tool``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.process import ServiceError

__all__ = ["apt_install", "ensure_tool"]

# Tools whose Debian package has another name. ``prometheus`` brings promtool and a server
# that its install would start: ``_no_service_starts`` keeps that server down.
# ``chromium-driver`` brings chromium of the same version (the console's browser tests).
PACKAGES = {"promtool": "prometheus", "chromedriver": "chromium-driver"}
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def apt_install(package: str, *, hint: str) -> None:
    """``apt-get install package`` (root only); ``hint`` says what to do otherwise."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError(hint)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with _no_service_starts():
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
            result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if result.returncode != 0:
                raise ServiceError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")


@contextmanager
def _no_service_starts() -> Iterator[None]:
    """A policy-rc.d answering 101 (action forbidden) while apt runs: no package starts a daemon.

    invoke-rc.d and deb-systemd-invoke ask it before starting a service; an existing one (as
    in containers) is left as it is.
    """
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC_D.unlink(missing_ok=True)


def ensure_tool(command: str, package: str | None = None) -> str:
    """The path of ``command``, installing Debian's ``package`` (default: same name) if missing."""
    found = shutil.which(command)
    if found is not None:
        return found
    package = package or PACKAGES.get(command, command)
    hint = f"{command} not found: install it (Debian: apt-get install {package})"
    apt_install(package, hint=hint)
    found = shutil.which(command)
    if found is None:
        raise ServiceError(f"installed {package} but found no {command} on PATH")
    return found
