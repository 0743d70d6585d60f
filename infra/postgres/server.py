"""Our own PostgreSQL cluster: initdb into the state folder, pg_ctl start/stop, own port.

initdb and pg_ctl refuse to run as root, so when we are root the cluster belongs to the
unprivileged ``postgres`` system user and every server command runs as that user. That user
cannot enter a clone under a private (0700) folder such as /root: then the cluster lives in a
folder of its own under that user's home, one per state folder (see ``cluster_home``).

``ONCEPIPE_INFRA_POSTGRES_SECURITY=scram-tls`` serves TCP only over TLS with scram-sha-256
passwords, one login role per component (``infra.postgres.security``); the mode is chosen at
each start (pg_hba.conf and the TLS settings are rewritten), and a server running in the other
mode is refused until it is stopped.

The port comes from the layout at every start (``-p`` overrides the configuration written by
initdb), so ``ONCEPIPE_INFRA_POSTGRES_PORT`` moves an existing cluster.

Public names: ``Postgres``.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from infra.apt import apt_install
from infra.paths import InfraLayout
from infra.postgres.home import SERVICE_USER, cluster_home, service_account
from infra.postgres.security import (
    COMPONENT_ROLES,
    HBA_PLAINTEXT,
    HBA_SECURED,
    SUPERUSER_COMPONENT,
    PostgresSecurity,
)
from infra.process import (
    ServiceError,
    child_pids,
    port_open,
    read_pid,
    send_signal,
    tail,
    wait_until,
)

__all__ = ["Postgres"]

SUPERUSER = "oncepipe"
DATABASE = "oncepipe"
CREATECLUSTER_CONF = Path("/etc/postgresql-common/createcluster.conf")

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_wal_size": "1GB",
    "logging_collector": "off",
    "log_line_prefix": "'%m [%p] %a '",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


def _find_bin_dir() -> Path | None:
    override = os.environ.get("ONCEPIPE_INFRA_PG_BIN_DIR")
    if override:
        return Path(override)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class Postgres:
    """Install, initialise, start, stop, kill and restart the native PostgreSQL."""

    name = "postgres"

    def __init__(self, layout: InfraLayout) -> None:
        self.layout = layout
        self.port = layout.postgres_port

    # Resolved on first use: as root on a fresh machine, install() creates the postgres user
    # that decides where the cluster can live.
    @functools.cached_property
    def home(self) -> Path:
        """The folder holding data, socket and log (see ``infra.postgres.home``)."""
        return cluster_home(self.layout.state_dir)

    @property
    def secured(self) -> bool:
        """True in the scram-tls mode."""
        return self.layout.postgres_security != "plaintext"

    @functools.cached_property
    def security(self) -> PostgresSecurity | None:
        """The secured mode's CA, certificate and passwords; None in plaintext mode."""
        return PostgresSecurity(self.home, SUPERUSER) if self.secured else None

    @property
    def mode_file(self) -> Path:
        """The security mode the running server was started in."""
        return self.home / "security.mode"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket."""
        return self.home / "run"

    @property
    def log_path(self) -> Path:
        """The server log."""
        return self.home / "postgres.log"

    # -- installation -------------------------------------------------------------------
    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def install(self) -> Path:
        """Return the server binaries' folder, installing Debian's package when root."""
        bin_dir = _find_bin_dir()
        if bin_dir is not None:
            return bin_dir
        hint = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
            "(Debian/Ubuntu: apt-get install postgresql) or set ONCEPIPE_INFRA_PG_BIN_DIR"
        )
        if self._as_root:
            # The package would otherwise create and start its own cluster on port 5432.
            CREATECLUSTER_CONF.parent.mkdir(parents=True, exist_ok=True)
            if "create_main_cluster = false" not in (
                CREATECLUSTER_CONF.read_text() if CREATECLUSTER_CONF.exists() else ""
            ):
                with CREATECLUSTER_CONF.open("a") as conf:
                    conf.write("\ncreate_main_cluster = false\n")
        apt_install("postgresql", hint=hint)
        bin_dir = _find_bin_dir()
        if bin_dir is None:
            raise ServiceError("installed postgresql but found no initdb under /usr/lib/postgresql")
        return bin_dir

    def _run(self, *cmd: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a server command as the cluster's owner."""
        if self._as_root:
            kwargs.setdefault("user", SERVICE_USER)
            kwargs.setdefault("group", SERVICE_USER)
            kwargs.setdefault("extra_groups", [])
        return subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)

    def _prepare_home(self) -> None:
        for folder in (self.home, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            owner = service_account()
            if owner is None:
                raise ServiceError(
                    f"running as root needs the unprivileged '{SERVICE_USER}' user to own the "
                    "cluster; install Debian's postgresql package or run as a normal user"
                )
            for folder in (self.home, self.socket_dir):
                os.chown(folder, owner.pw_uid, owner.pw_gid)
            if self.data_dir.exists():
                os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)

    def _initdb(self, bin_dir: Path) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        result = self._run(
            str(bin_dir / "initdb"),
            "--pgdata", str(self.data_dir),
            "--username", SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C.UTF-8",
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(f"initdb failed:\n{result.stdout[-1000:]}{result.stderr[-2000:]}")
        settings = {**SERVER_SETTINGS, "port": str(self.port)}
        settings["unix_socket_directories"] = f"'{self.socket_dir}'"
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# oncepipe native service\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The connection URL of the service's database (secured: the superuser's, over TLS)."""
        if self.security is not None:
            return self.security.client_url(SUPERUSER, self.port, DATABASE)
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def pid(self) -> int | None:
        """The postmaster's pid when it runs."""
        return read_pid(self.data_dir / "postmaster.pid")

    def running(self) -> bool:
        """True when the postmaster is alive."""
        return self.pid() is not None

    def running_port(self) -> int | None:
        """The port the running postmaster listens on (postmaster.pid's 4th line), or None."""
        if not self.running():
            return None
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def _refuse_other_mode(self) -> None:
        recorded = self.mode_file.read_text().strip() if self.mode_file.exists() else "plaintext"
        if recorded != self.layout.postgres_security:
            raise ServiceError(
                f"postgres runs in {recorded} mode, not {self.layout.postgres_security}: stop "
                "it with `make down`, then start it in the new mode (make up PG_SECURITY=...)"
            )

    def _configure_security(self) -> list[str]:
        """Write pg_hba.conf for the mode; return the server's extra ``-c`` settings."""
        hba = HBA_PLAINTEXT
        options: list[str] = []
        if self.security is not None:
            self.security.ensure()
            hba = HBA_SECURED.format(superuser=SUPERUSER)
            options = self.security.server_options()
            owner = service_account()
            if owner is not None:  # the server's account must own (and alone read) its key
                for path in (self.security.tls_folder, *self.security.tls_folder.iterdir()):
                    os.chown(path, owner.pw_uid, owner.pw_gid)
        (self.data_dir / "pg_hba.conf").write_text(hba)
        owner = service_account()
        if owner is not None:
            os.chown(self.data_dir / "pg_hba.conf", owner.pw_uid, owner.pw_gid)
        self.mode_file.write_text(self.layout.postgres_security + "\n")
        return options

    def _refuse_other_port(self) -> None:
        running_port = self.running_port()
        if running_port is not None and running_port != self.port:
            raise ServiceError(
                f"postgres already runs on port {running_port}, not {self.port}: stop it with "
                "`make down` (python -m infra down postgres), then start it on the new port"
            )

    def start(self, timeout: float = 60.0) -> bool:
        """Start the cluster (initialising it first) and wait until it accepts queries.

        Never leaves a half-started server: if a step after the postmaster's start fails,
        the server is stopped before the error is raised.
        """
        bin_dir = self.install()
        if self.running():
            self._refuse_other_port()
            self._refuse_other_mode()
            self.wait_ready(timeout)
            return False
        if port_open(self.port):
            raise ServiceError(
                f"port {self.port} is taken by another process; stop it or set "
                "ONCEPIPE_INFRA_POSTGRES_PORT to a free port"
            )
        self._prepare_home()
        self._initdb(bin_dir)
        settings = "".join(f" -c {option}" for option in self._configure_security())
        # pg_ctl's own -w waits for the postmaster; readiness below also needs the database.
        # -p overrides the port initdb wrote into postgresql.conf: the layout's port wins.
        result = self._run(
            str(bin_dir / "pg_ctl"), "start", "--wait", f"--timeout={int(timeout)}",
            "--pgdata", str(self.data_dir), "--log", str(self.log_path),
            "-o", f"-p {self.port}{settings}",
        )  # fmt: skip
        try:
            if result.returncode != 0:
                raise ServiceError(
                    f"pg_ctl start failed: {result.stdout.strip()} {result.stderr.strip()}\n"
                    f"--- last lines of {self.log_path} ---\n{tail(self.log_path)}"
                )
            self._create_database(bin_dir)
            if self.security is not None:
                # Passwords (as SCRAM verifiers) go through psql's standard input, not argv.
                self._psql(bin_dir, "", stdin=self.security.roles_sql())
            self.wait_ready(timeout)
        except ServiceError:
            # pg_ctl gives up waiting without stopping what it started.
            self.stop(mode="immediate")
            raise
        return True

    def _psql(
        self, bin_dir: Path, sql: str, database: str = "postgres", stdin: str | None = None
    ) -> str:
        """Run ``sql`` (or, with ``stdin``, the statements read from it) as the superuser."""
        psql = bin_dir / "psql" if (bin_dir / "psql").exists() else Path("psql")
        command = ["-f", "-"] if stdin is not None else ["-c", sql]
        result = subprocess.run(
            [str(psql), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", SUPERUSER, "-d", database, *command],
            capture_output=True, text=True, check=False, input=stdin,
        )  # fmt: skip
        if result.returncode != 0:
            shown = sql if stdin is None else "(statements on stdin)"
            raise ServiceError(f"psql {shown!r} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _create_database(self, bin_dir: Path) -> None:
        exists = self._psql(bin_dir, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists != "1":
            self._psql(bin_dir, f"CREATE DATABASE {DATABASE}")

    def _ready(self) -> bool:
        bin_dir = _find_bin_dir()
        if bin_dir is None or not (bin_dir / "pg_isready").exists():
            return port_open(self.port)
        check = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", SUPERUSER, "-d", DATABASE],
            check=False,
        )  # fmt: skip
        return check.returncode == 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the server accepts connections to the service's database."""
        wait_until(
            self._ready, timeout=timeout, what="postgres to accept connections", log=self.log_path
        )

    def stop(self, timeout: float = 60.0, mode: str = "fast") -> bool:
        """Stop with pg_ctl (``fast`` or ``immediate``); False when it was not running."""
        if not self.running():
            return False
        bin_dir = self.install()
        result = self._run(
            str(bin_dir / "pg_ctl"), "stop", "--wait", f"--timeout={int(timeout)}",
            "--pgdata", str(self.data_dir), "--mode", mode,
        )  # fmt: skip
        if result.returncode != 0 and self.running():
            raise ServiceError(f"pg_ctl stop failed: {result.stderr.strip()}")
        return True

    def kill(self) -> bool:
        """SIGKILL the postmaster, as a crash would; False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        # A crashed machine takes the backends with it; orphans would hold shared memory.
        for child in [pid, *child_pids(pid)]:
            send_signal(child, signal.SIGKILL)
        # Wait until the processes are reaped, not just dead: the next postmaster refuses to
        # start while the old pid (even a zombie) still answers kill(0).
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30, what="postgres to exit")
        wait_until(lambda: not child_pids(pid), timeout=10, what="postgres backends to exit")
        return True

    def restart(self, timeout: float = 60.0) -> None:
        """Stop (fast) and start again."""
        self.stop()
        self.start(timeout)

    def remove_state(self) -> None:
        """Delete the cluster's folder (stop it first), wherever it lives."""
        shutil.rmtree(self.home, ignore_errors=True)

    def env(self, component: str | None = None) -> dict[str, str]:
        """Environment variables that point oncepipe at this database.

        Secured: the URL of ``component``'s role (default ``ONCEPIPE_INFRA_POSTGRES_PRINCIPAL``
        or ``ONCEPIPE_INFRA_KAFKA_PRINCIPAL``, else ``admin``: the superuser) and its passfile
        (``PGPASSFILE``); never a password.
        """
        if self.security is None:
            return {"ONCEPIPE_DATABASE_URL": self.url}
        role = self.security.role(component or self.component())
        return {
            "ONCEPIPE_DATABASE_URL": self.security.client_url(role, self.port, DATABASE),
            "PGPASSFILE": str(self.security.passfile(role)),
        }

    def component(self) -> str:
        """The component whose role ``env`` names (``make env PRINCIPAL=...``)."""
        chosen = (
            os.environ.get("ONCEPIPE_INFRA_POSTGRES_PRINCIPAL")
            or os.environ.get("ONCEPIPE_INFRA_KAFKA_PRINCIPAL")
            or SUPERUSER_COMPONENT
        )
        if chosen != SUPERUSER_COMPONENT and chosen not in COMPONENT_ROLES:
            raise ServiceError(
                f"PRINCIPAL={chosen!r}: choose one of "
                f"{', '.join([SUPERUSER_COMPONENT, *COMPONENT_ROLES])}"
            )
        return chosen
