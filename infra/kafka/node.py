"""One KRaft node (broker and controller in one JVM) of the native Kafka service.

Public names: ``KafkaNode``, ``cluster_settings``.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from infra.kafka.jars import jars_dir
from infra.kafka.security import BrokerSecurity
from infra.paths import InfraLayout
from infra.process import ServiceError, port_open, read_pid, send_signal, tail, wait_until

__all__ = ["KafkaNode", "cluster_settings"]

LOG4J_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"
BIND_CLASH_MARKER = "java.net.BindException: Address already in use"
STARTED_MARKER = "Kafka Server started"
HEAP = ["-Xms128m", "-Xmx512m"]


def cluster_settings(nodes: int) -> dict[str, str]:
    """Broker settings for a cluster of ``nodes``: internal topics must fit on it."""
    replicas = str(min(nodes, 3))
    # With one node, min.insync.replicas=2 could never be met; with three, 2 survives a loss.
    min_isr = "1" if nodes == 1 else "2"
    return {
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.partitions": "6",
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "unclean.leader.election.enable": "false",
        # Let tests use short sessions so a killed member's partitions move within seconds.
        "group.min.session.timeout.ms": "1000",
        "log.retention.hours": "168",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }


class KafkaNode:
    """Start, stop and kill one node; its files live under ``home``."""

    def __init__(
        self,
        layout: InfraLayout,
        home: Path,
        node_id: int,
        nodes: int,
        security: BrokerSecurity | None = None,
    ) -> None:
        self.layout = layout
        self.security = security
        self.node_id = node_id
        self.nodes = nodes
        self.port = layout.kafka_port + 2 * (node_id - 1)
        self.controller_port = layout.kafka_controller_port + 2 * (node_id - 1)
        self.home = home
        self.data_dir = home / "data"
        self.logs_dir = home / "logs"
        self.config_file = home / "server.properties"
        self.pid_file = home / "kafka.pid"
        self.console_log = self.logs_dir / "console.log"
        self.log_path = self.logs_dir / "server.log"
        # Where this launch's lines start in the server log (a launch refused before it ran
        # has none: bind_failed() then reads the whole log, which has no clash of this launch).
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    @property
    def address(self) -> str:
        """host:port of this node's client listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def proxied_port(self) -> int:
        """The PROXIED listener: clients that reach this node through a TCP proxy land here."""
        return self.port + 10

    @property
    def proxy_port(self) -> int:
        """The address the PROXIED listener advertises, where a fault test's proxy listens.

        Metadata fetched over the PROXIED listener names every broker by its proxy address, so
        a client bootstrapped at the proxies reaches all brokers through them; nothing listens
        there unless a fault test runs its proxies.
        """
        return self.port + 11

    @property
    def proxy_address(self) -> str:
        """host:port of this node's proxy (see ``proxy_port``)."""
        return f"127.0.0.1:{self.proxy_port}"

    @property
    def client_protocol(self) -> str:
        """The client listeners' protocol: SASL_SSL when secured, else PLAINTEXT."""
        return "PLAINTEXT" if self.security is None else "SASL_SSL"

    def write_config(self, voters: str) -> None:
        """Write server.properties for this node (0600: a secured one holds its password)."""
        client = self.client_protocol
        listeners = [f"{client}://127.0.0.1:{self.port}"]
        advertised = list(listeners)
        protocols = [f"{client}:{client}", "CONTROLLER:PLAINTEXT"]
        if self.security is None:
            # The fault tests' TCP proxies cannot see inside TLS: a secured node has no PROXIED
            # listener (and holds one port fewer in the ephemeral range).
            listeners.append(f"PROXIED://127.0.0.1:{self.proxied_port}")
            advertised.append(f"PROXIED://{self.proxy_address}")
            protocols.append("PROXIED:PLAINTEXT")
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": ",".join(
                [listeners[0], f"CONTROLLER://127.0.0.1:{self.controller_port}", *listeners[1:]]
            ),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": client,
            # The controller listener stays plaintext on loopback in every mode.
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.data_dir),
            **cluster_settings(self.nodes),
        }
        if self.security is not None:
            settings.update(self.security.server_settings([client]))
        for folder in (self.data_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.config_file.touch(mode=0o600, exist_ok=True)
        self.config_file.chmod(0o600)
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def java(self, main: str, *args: str) -> list[str]:
        """The java command line running ``main`` with the broker's classpath and logging."""
        return [
            "java", *HEAP, "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp", f"{jars_dir(self.layout.cache_dir, self.layout.kafka_version)}/*", main, *args,
        ]  # fmt: skip

    def format_storage(self, cluster_id: str, scram: list[str] | None = None) -> None:
        """Format the log dir for ``cluster_id`` unless it already is.

        A secured node's SCRAM credentials (``scram``: ``--add-scram`` arguments in the salted
        form) go through a 0600 java argument file that is removed right after: none reaches
        the command line.
        """
        if (self.data_dir / "meta.properties").exists():
            return
        arguments = ["kafka.tools.StorageTool", "format", "-t", cluster_id,
                     "-c", str(self.config_file)]  # fmt: skip
        argfile = self.home / "format.args"
        if self.security is not None:
            self.security.write_argfile(argfile, [*arguments, *(scram or [])])
            command = self.java("@" + str(argfile))
        else:
            command = self.java(*arguments)
        try:
            fmt = subprocess.run(command, capture_output=True, text=True, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if fmt.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr[-2000:]}")

    def running_ports(self) -> tuple[int, int] | None:
        """(client port, controller port) the running node was started with, or None."""
        if not self.running():
            return None
        try:
            config = self.config_file.read_text()
        except FileNotFoundError:
            return None
        client = re.search(
            r"^listeners=(?:PLAINTEXT|SASL_SSL)://[^:,]+:(\d+)", config, re.MULTILINE
        )
        controller = re.search(r"^listeners=.*CONTROLLER://[^:,]+:(\d+)", config, re.MULTILINE)
        if client is None or controller is None:
            return None
        return int(client.group(1)), int(controller.group(1))

    def pid(self) -> int | None:
        """The node's pid when it runs."""
        return read_pid(self.pid_file)

    def running(self) -> bool:
        """True when the node's process is alive."""
        return self.pid() is not None

    def launch(self) -> subprocess.Popen[bytes] | None:
        """Start the JVM without waiting; None when it already runs."""
        if self.running():
            return None
        ports = [
            (self.port, "ONCEPIPE_INFRA_KAFKA_PORT"),
            (self.controller_port, "ONCEPIPE_INFRA_KAFKA_CONTROLLER_PORT"),
        ]
        if self.security is None:
            ports.append((self.proxied_port, "ONCEPIPE_INFRA_KAFKA_PORT"))
        for port, variable in ports:
            if port_open(port):
                raise ServiceError(
                    f"port {port} (kafka node {self.node_id}) is taken by another process; "
                    f"stop it or set {variable} to move the node's ports"
                )
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.console_log.open("ab") as console:
            proc = subprocess.Popen(
                self.java("kafka.Kafka", str(self.config_file)),
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def await_started(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Wait for the "started" line of this launch and the open port."""

        def started() -> bool:
            if proc.poll() is not None:
                raise ServiceError(
                    f"kafka node {self.node_id} exited with code {proc.returncode} while "
                    f"starting\n--- {self.console_log} ---\n{tail(self.console_log)}\n"
                    f"--- {self.log_path} ---\n{tail(self.log_path)}"
                )
            return self._log_has_marker() and port_open(self.port)

        wait_until(started, timeout=timeout, what=f"kafka node {self.node_id} to start",
                   log=self.log_path)  # fmt: skip

    def _log_has_marker(self) -> bool:
        return STARTED_MARKER.encode() in self._log_since_launch()

    def bind_failed(self) -> bool:
        """True when this launch died because one of its ports was taken at bind time."""
        return BIND_CLASH_MARKER.encode() in self._log_since_launch()

    def _log_since_launch(self) -> bytes:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read()
        except FileNotFoundError:
            return b""

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
        """SIGKILL the node, as a crash would; False if it was not running."""
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
            lambda: read_pid(self.pid_file) is None and not port_open(self.port),
            timeout=timeout,
            what=f"kafka node {self.node_id} to exit and release its port",
        )
        self.pid_file.unlink(missing_ok=True)
