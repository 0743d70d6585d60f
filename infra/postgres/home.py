"""Where the PostgreSQL cluster of a state folder lives, and who runs it.

As a normal user the cluster is in ``<state>/postgres`` and runs as that user. As root it runs
as the unprivileged ``postgres`` system user, which cannot enter a clone under a private (0700)
folder such as /root; the cluster then lives in ``~postgres/oncepipe-clusters/<clone>-<hash>``,
one folder per state folder, which that user can always reach.

Public names: ``SERVICE_USER``, ``cluster_home``, ``service_account``.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
from pathlib import Path

__all__ = ["SERVICE_USER", "cluster_home", "service_account"]

SERVICE_USER = "postgres"
SHARED_FOLDER = "oncepipe-clusters"


def service_account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root; None when not root or it is missing."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None


def _can_enter(account: pwd.struct_passwd, folder: Path) -> bool:
    # The kernel decides (modes, ACLs, every parent): ask it as that user rather than re-derive.
    check = subprocess.run(
        ["test", "-x", str(folder)],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        capture_output=True,
        check=False,
    )
    return check.returncode == 0


def cluster_home(state_dir: Path) -> Path:
    """The folder holding the cluster's data, socket and log for ``state_dir``."""
    local = state_dir / "postgres"
    account = service_account()
    if account is None or (local / "data" / "PG_VERSION").exists():
        return local
    existing = next(folder for folder in (state_dir, *state_dir.parents) if folder.exists())
    # Folders we create below the nearest existing one get mode 0755, so it decides.
    if _can_enter(account, existing):
        return local
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    return Path(account.pw_dir) / SHARED_FOLDER / f"{state_dir.parent.name}-{digest}"
