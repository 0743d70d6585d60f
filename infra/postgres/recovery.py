"""Extra PostgreSQL clusters for recovery drills: WAL archive, base backup, restore, standby.

``ArchivedCluster`` is a cluster of its own (own folder and port, beside the service's) with
``archive_mode=on`` copying each finished WAL segment into ``<folder>/archive``. From it:
``base_backup`` (``pg_basebackup``), ``restore`` (a new data folder from a base backup, replayed
from the archive up to a named restore point, then promoted: point-in-time recovery) and
``standby`` (a streaming replica, asynchronous, promoted with ``promote``).

As root every server command runs as the ``postgres`` system user (initdb and pg_ctl refuse
root), and the folders live under that user's home so that it can enter them.

Public names: ``ArchivedCluster``, ``clusters_folder``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from infra.postgres.home import SERVICE_USER, service_account
from infra.postgres.server import DATABASE, SUPERUSER, _find_bin_dir
from infra.process import ServiceError, port_open, tail, wait_until

__all__ = ["ArchivedCluster", "clusters_folder"]

# fsync off: the drills crash processes, never the machine, and run on a shared disk.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "fsync": "off",
    "wal_level": "replica",
    "archive_mode": "on",
    "max_wal_senders": "5",
    "hot_standby": "on",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


def clusters_folder() -> Path:
    """A folder the server's account can enter, for the drills' clusters."""
    account = service_account()
    if account is None:
        return Path(tempfile.gettempdir())
    folder = Path(account.pw_dir) / "oncepipe-clusters"
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, account.pw_uid, account.pw_gid)
    return folder


def _run(*cmd: str | Path, check: bool = True) -> str:
    """Run a server command as the clusters' owner; its stdout."""
    kwargs: dict[str, Any] = {}
    if service_account() is not None:
        kwargs = {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}
    result = subprocess.run(
        [str(part) for part in cmd], capture_output=True, text=True, check=False, **kwargs
    )
    if check and result.returncode != 0:
        raise ServiceError(f"{Path(str(cmd[0])).name} failed: {result.stderr.strip()[-2000:]}")
    return str(result.stdout)


def _bin(name: str) -> Path:
    folder = _find_bin_dir()
    if folder is None:
        raise ServiceError("PostgreSQL server binaries not found: run `make install`")
    return folder / name


class ArchivedCluster:
    """One cluster in ``root/<name>``: data, log, socket; WAL archived to ``archive``."""

    def __init__(self, root: Path, name: str, port: int, archive: Path) -> None:
        self.home = root / name
        self.port = port
        self.archive = archive

    @property
    def data(self) -> Path:
        """The data folder."""
        return self.home / "data"

    @property
    def log(self) -> Path:
        """The server log."""
        return self.home / "server.log"

    @property
    def url(self) -> str:
        """The URL of the ``oncepipe`` database."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _own(self, *folders: Path) -> None:
        account = service_account()
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            if account is not None:
                os.chown(folder, account.pw_uid, account.pw_gid)

    @classmethod
    def create(cls, root: Path, name: str, port: int) -> ArchivedCluster:
        """Initialise a primary archiving into ``root/archive``, start it, create the database."""
        cluster = cls(root, name, port, root / "archive")
        cluster._own(root, cluster.archive, cluster.home)
        _run(_bin("initdb"), "--pgdata", cluster.data, "--username", SUPERUSER, "--auth",
             "trust", "--encoding", "UTF8", "--locale", "C.UTF-8")  # fmt: skip
        settings = {
            **SETTINGS,
            "archive_command": f"'test ! -f {cluster.archive}/%f && cp %p {cluster.archive}/%f'",
            "unix_socket_directories": f"'{cluster.home}'",
        }
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        cluster.start()
        cluster.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
        return cluster

    def psql(self, sql: str, database: str = DATABASE) -> str:
        """Run one statement as the superuser; its unaligned output."""
        output = _run(_bin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                      "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql)  # fmt: skip
        return output.strip()

    def start(self) -> None:
        """Start the server on its port and wait until it accepts connections."""
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken: pick another for the drill")
        try:
            _run(_bin("pg_ctl"), "start", "--wait", "--timeout=120", "--pgdata", self.data,
                 "--log", self.log, "-o", f"-p {self.port}")  # fmt: skip
        except ServiceError as exc:
            raise ServiceError(f"{exc}\n--- {self.log} ---\n{tail(self.log)}") from exc

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash would); nothing when it is not running."""
        if (self.data / "postmaster.pid").exists():
            _run(_bin("pg_ctl"), "stop", "--wait", "--pgdata", self.data, "--mode", mode,
                 check=False)  # fmt: skip

    def in_recovery(self) -> bool:
        """True while the server replays WAL (a standby, or a restore not yet promoted)."""
        return self.psql("SELECT pg_is_in_recovery()") == "t"

    def base_backup(self, name: str) -> Path:
        """``pg_basebackup`` of the running server into ``<root>/<name>`` (plain format)."""
        target = self.home.parent / name
        _run(_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
             "-D", target, "--checkpoint=fast", "--wal-method=stream")  # fmt: skip
        return target

    def restore_point(self, name: str) -> None:
        """Create a named restore point and wait until its WAL segment is archived."""
        self.psql(f"SELECT pg_create_restore_point('{name}')")
        segment = self.psql("SELECT pg_walfile_name(pg_switch_wal())")
        wait_until(
            (self.archive / segment).exists,
            timeout=60,
            what=f"WAL segment {segment} archived",
            log=self.log,
        )

    def restore(self, backup: Path, target_name: str, name: str) -> ArchivedCluster:
        """A new cluster from ``backup`` replayed from the archive up to ``target_name``, promoted.

        It takes this cluster's port: stop this one first.
        """
        restored = ArchivedCluster(self.home.parent, name, self.port, self.archive)
        shutil.copytree(backup, restored.data)
        restored._chown_tree()
        with (restored.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"restore_command = 'cp {self.archive}/%f %p'\n")
            conf.write(f"recovery_target_name = '{target_name}'\n")
            conf.write("recovery_target_action = 'promote'\n")
            conf.write(f"unix_socket_directories = '{restored.home}'\n")
        (restored.data / "recovery.signal").touch()
        restored._chown_tree()
        restored.start()
        wait_until(
            lambda: not restored.in_recovery(),
            timeout=120,
            what="the restore promoted",
            log=restored.log,
        )
        return restored

    def standby(self, name: str, port: int) -> ArchivedCluster:
        """A streaming replica of this server (asynchronous), started on ``port``."""
        replica = ArchivedCluster(self.home.parent, name, port, self.archive)
        replica._own(replica.home)
        _run(_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
             "-D", replica.data, "--checkpoint=fast", "--wal-method=stream",
             "--write-recovery-conf")  # fmt: skip
        with (replica.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("archive_mode = 'off'\n")
            conf.write(f"unix_socket_directories = '{replica.home}'\n")
        replica._chown_tree()
        replica.start()
        return replica

    def replayed_lsn(self) -> str:
        """The last WAL position a standby replayed."""
        return self.psql("SELECT pg_last_wal_replay_lsn()")

    def promote(self) -> None:
        """End a standby's recovery (``pg_ctl promote``) and wait until it takes writes."""
        _run(_bin("pg_ctl"), "promote", "--wait", "--pgdata", self.data)
        wait_until(
            lambda: not self.in_recovery(), timeout=60, what="the standby promoted", log=self.log
        )

    def _chown_tree(self) -> None:
        account = service_account()
        if account is None:
            return
        self._own(self.home)
        for path in [self.data, *self.data.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
        self.data.chmod(0o700)

    def remove(self) -> None:
        """Stop the server (immediately) and delete its folder."""
        self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)
