"""A single-node KRaft Kafka broker from Maven Central jars, run on the machine's Java.

Public names: ``Kafka``.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
from pathlib import Path

from infra.paths import InfraLayout
from infra.process import ServiceError, port_open, read_pid, send_signal, tail, wait_until

__all__ = ["Kafka"]

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG4J_CONFIG = HERE / "log4j2.properties"
STARTED_MARKER = "Kafka Server started"
HEAP = ["-Xms128m", "-Xmx512m"]

# One node must hold every internal topic itself, or groups and transactions never get a
# coordinator ("coordinator not available").
SINGLE_NODE_SETTINGS = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "6",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    "num.partitions": "6",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "unclean.leader.election.enable": "false",
    # Let tests use short sessions so a killed member's partitions move within seconds.
    "group.min.session.timeout.ms": "1000",
    "log.retention.hours": "168",
    "log.segment.bytes": str(64 * 1024 * 1024),
}


class Kafka:
    """Install, start, stop, kill and restart the native broker."""

    name = "kafka"

    def __init__(self, layout: InfraLayout) -> None:
        self.layout = layout
        self.home = layout.state_dir / "kafka"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.config_file = self.home / "server.properties"
        self.pid_file = self.home / "kafka.pid"
        self.console_log = self.logs_dir / "console.log"
        self.log_path = self.logs_dir / "server.log"

    # -- installation -------------------------------------------------------------------
    @property
    def jars_dir(self) -> Path:
        """Cache folder of this pom's jars, outside the clone, keyed by the pom's content."""
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
        return self.layout.cache_dir / "kafka-jars" / digest

    def install(self) -> None:
        """Fetch the broker's jars from Maven Central unless the cache already has them."""
        done = self.jars_dir / ".complete"
        if done.exists():
            return
        if shutil.which("mvn") is None:
            raise ServiceError("mvn not found: install Maven (Debian: apt-get install maven)")
        if shutil.which("java") is None:
            raise ServiceError("java not found: install Java 17+ (Debian: openjdk-17-jre-headless)")
        partial = self.jars_dir.with_name(self.jars_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [
            "mvn", "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(
                "fetching Kafka jars from Maven Central failed; check network access to "
                f"repo.maven.apache.org and ~/.m2/settings.xml:\n{result.stdout[-2000:]}"
            )
        (partial / ".complete").touch()
        shutil.rmtree(self.jars_dir, ignore_errors=True)
        partial.rename(self.jars_dir)

    # -- configuration ------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        """The address clients connect to."""
        return f"127.0.0.1:{self.layout.kafka_port}"

    def _write_config(self) -> None:
        port, cport = self.layout.kafka_port, self.layout.kafka_controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **SINGLE_NODE_SETTINGS,
        }
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java", *HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp", f"{self.jars_dir}/*", main, *args,
        ]  # fmt: skip

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        tool = "kafka.tools.StorageTool"
        uuid = subprocess.run(
            self._java(tool, "random-uuid"), capture_output=True, text=True, check=False
        )
        if uuid.returncode != 0:
            raise ServiceError(f"kafka storage random-uuid failed:\n{uuid.stderr[-2000:]}")
        cluster_id = uuid.stdout.strip().splitlines()[-1]
        fmt = subprocess.run(
            self._java(tool, "format", "-t", cluster_id, "-c", str(self.config_file)),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr[-2000:]}")

    # -- lifecycle ----------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid when it runs."""
        return read_pid(self.pid_file)

    def running(self) -> bool:
        """True when the broker process is alive."""
        return self.pid() is not None

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker and wait until it serves; False when it already ran."""
        if self.running():
            self.wait_ready(timeout)
            return False
        if port_open(self.layout.kafka_port):
            raise ServiceError(
                f"port {self.layout.kafka_port} is taken by another process; stop it or set "
                "ONCEPIPE_INFRA_KAFKA_PORT to a free port"
            )
        self.install()
        for folder in (self.data_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._format_storage()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.console_log.open("ab") as console:
            proc = subprocess.Popen(
                [*self._java("kafka.Kafka", str(self.config_file))],
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        self._await_started(proc, log_offset, timeout)
        return True

    def _await_started(
        self, proc: subprocess.Popen[bytes], log_offset: int, timeout: float
    ) -> None:
        def started() -> bool:
            if proc.poll() is not None:
                raise ServiceError(
                    f"kafka exited with code {proc.returncode} while starting\n"
                    f"--- {self.console_log} ---\n{tail(self.console_log)}\n"
                    f"--- {self.log_path} ---\n{tail(self.log_path)}"
                )
            return self._log_has_marker(log_offset) and port_open(self.layout.kafka_port)

        wait_until(started, timeout=timeout, what="kafka to start", log=self.log_path)

    def _log_has_marker(self, offset: int) -> bool:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return STARTED_MARKER.encode() in log.read()
        except FileNotFoundError:
            return False

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the broker accepts connections."""
        wait_until(
            lambda: port_open(self.layout.kafka_port),
            timeout=timeout,
            what=f"kafka on port {self.layout.kafka_port}",
            log=self.log_path,
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop cleanly (SIGTERM), SIGKILL after ``timeout``; False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        send_signal(pid, signal.SIGTERM)
        try:
            self._await_exit(timeout)
        except ServiceError:
            send_signal(pid, signal.SIGKILL)
            self._await_exit(timeout=10)
        return True

    def kill(self) -> bool:
        """SIGKILL the broker, as a crash would; False if not running."""
        pid = self.pid()
        if pid is None:
            return False
        send_signal(pid, signal.SIGKILL)
        self._await_exit(timeout=10)
        return True

    def _await_exit(self, timeout: float) -> None:
        # The JVM's leader thread can turn zombie while other threads still hold the sockets,
        # so "not running" is only true once the listener is gone too.
        wait_until(
            lambda: read_pid(self.pid_file) is None and not port_open(self.layout.kafka_port),
            timeout=timeout,
            what="kafka to exit and release its port",
        )
        self.pid_file.unlink(missing_ok=True)

    def restart(self, timeout: float = 90.0) -> None:
        """Stop (cleanly) and start again."""
        self.stop()
        self.start(timeout)

    def env(self) -> dict[str, str]:
        """Environment variables that point oncepipe at this broker."""
        return {"ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}
