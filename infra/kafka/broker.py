"""The native Kafka service: a KRaft cluster of one node (default) or three, on loopback.

``ONCEPIPE_INFRA_KAFKA_BROKERS=3`` (``make up KAFKA_BROKERS=3``) runs three combined
broker/controller nodes with replication factor 3 and ``min.insync.replicas=2``, in a state
folder of its own; node ``i`` listens on ``kafka_port + 2*(i-1)``.

``ONCEPIPE_INFRA_KAFKA_SECURITY=scram-tls`` (``make up KAFKA_SECURITY=scram-tls``) secures the
client listeners (SASL_SSL, SCRAM-SHA-512, ACLs enforced; see ``infra.kafka.security``), also in
a state folder of its own (``kafka-scram-tls``, ``kafka-3-scram-tls``): switching modes never
starts a node on a log formatted for the other one, and switching back finds the old topics.

``ONCEPIPE_INFRA_KAFKA_VERSION`` (``make up KAFKA_VERSION=4.1.1``) picks the release (default
4.4.0). A state folder formatted by an older release is upgraded in place when the cluster has
started (``infra.kafka.versions``); one formatted by a newer release is refused.

Public names: ``Kafka``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from infra.kafka.jars import install_jars
from infra.kafka.node import KafkaNode
from infra.kafka.security import (
    BROKER_PRINCIPAL,
    COMPONENT_PRINCIPALS,
    SECURITY_MODES,
    BrokerSecurity,
)
from infra.kafka.versions import (
    VERSION_FILE,
    needs_upgrade,
    recorded_version,
    refuse_downgrade,
    upgrade_features,
)
from infra.paths import InfraLayout
from infra.process import ServiceError

_BIND_ATTEMPTS = 3

__all__ = ["Kafka"]


class Kafka:
    """Install, start, stop, kill and restart the cluster, or one node of it."""

    name = "kafka"

    def __init__(self, layout: InfraLayout) -> None:
        self.layout = layout
        count = layout.kafka_brokers
        self.secured = layout.kafka_security != "plaintext"
        folder = "kafka" if count == 1 else f"kafka-{count}"
        self.home = layout.state_dir / (
            f"{folder}-{layout.kafka_security}" if self.secured else folder
        )
        self.security = BrokerSecurity(self.home / "security") if self.secured else None
        self.nodes = [
            KafkaNode(
                layout, self.home if count == 1 else self.home / f"node-{i}", i, count,
                self.security,
            )
            for i in range(1, count + 1)
        ]  # fmt: skip

    @property
    def mode_file(self) -> Path:
        """Records the security mode the cluster's logs were formatted for."""
        return self.home / "security.mode"

    def siblings(self) -> list[Kafka]:
        """The same cluster size in the other security modes (their own state folders)."""
        return [
            Kafka(replace(self.layout, kafka_security=mode))
            for mode in SECURITY_MODES
            if mode != self.layout.kafka_security
        ]

    @property
    def log_path(self) -> Path:
        """The first node's server log."""
        return self.nodes[0].log_path

    @property
    def bootstrap_servers(self) -> str:
        """The addresses clients connect to."""
        return ",".join(node.address for node in self.nodes)

    @property
    def proxied_bootstrap_servers(self) -> str:
        """Bootstrap list through the fault tests' proxies (``KafkaNode.proxy_port``)."""
        return ",".join(node.proxy_address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        """One node by its KRaft node id (1-based)."""
        return self.nodes[node_id - 1]

    def install(self) -> Path:
        """Fetch the jars (cached per machine)."""
        return install_jars(self.layout.cache_dir, self.layout.kafka_version)

    def _cluster_id(self) -> str:
        id_file = self.home / "cluster.id"
        if id_file.exists():
            return id_file.read_text().strip()
        result = subprocess.run(
            self.nodes[0].java("kafka.tools.StorageTool", "random-uuid"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(f"kafka storage random-uuid failed:\n{result.stderr[-2000:]}")
        cluster_id = result.stdout.strip().splitlines()[-1]
        self.home.mkdir(parents=True, exist_ok=True)
        id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _refuse_other_format(self) -> None:
        formatted = any((n.data_dir / "meta.properties").exists() for n in self.nodes)
        if not formatted:
            return
        recorded = self.mode_file.read_text().strip() if self.mode_file.exists() else "plaintext"
        if recorded != self.layout.kafka_security:
            raise ServiceError(
                f"kafka state in {self.home} was formatted for {recorded}, not "
                f"{self.layout.kafka_security}: set ONCEPIPE_INFRA_KAFKA_SECURITY={recorded} "
                "(make up KAFKA_SECURITY=...), or delete it with `python -m infra clean kafka` "
                "(its topics are lost) and start again"
            )

    def _prepare(self) -> None:
        self.install()
        self._refuse_other_format()
        if self._formatted():
            refuse_downgrade(self.home, self.layout.kafka_version)
        if self.security is not None:
            self.security.ensure()
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        for node in self.nodes:
            node.write_config(voters)
        formatted = [(n.data_dir / "meta.properties").exists() for n in self.nodes]
        if not all(formatted):
            cluster_id = self._cluster_id()
            # One salt per principal for the whole cluster: every node bootstraps the same.
            scram = self.security.scram_arguments() if self.security is not None else None
            for node in self.nodes:
                node.format_storage(cluster_id, scram)
            self.mode_file.write_text(self.layout.kafka_security + "\n")
            (self.home / VERSION_FILE).write_text(self.layout.kafka_version + "\n")

    def _formatted(self) -> bool:
        return any((n.data_dir / "meta.properties").exists() for n in self.nodes)

    def _upgrade_if_older(self) -> None:
        """Raise the features of a cluster formatted by an older release (every node runs)."""
        version = self.layout.kafka_version
        if not self._formatted() or not needs_upgrade(self.home, version):
            return
        print(
            f"kafka: state in {self.home} was formatted by Kafka "
            f"{recorded_version(self.home)}; upgrading its features to {version}",
            file=sys.stderr,
        )
        node = self.nodes[0]
        try:
            upgrade_features(node.java, f"127.0.0.1:{node.controller_port}", self.home, version)
        except ServiceError as exc:
            raise ServiceError(
                f"{exc}\nthe cluster runs on its old feature levels; to start afresh, delete "
                "its state with `make down` then `python -m infra clean kafka` (topics are lost)"
            ) from exc

    def pid(self) -> int | None:
        """The first running node's pid."""
        return next((pid for node in self.nodes if (pid := node.pid()) is not None), None)

    def running(self) -> bool:
        """True when every node runs."""
        return all(node.running() for node in self.nodes)

    def _refuse_other_ports(self) -> None:
        for node in self.nodes:
            ports = node.running_ports()
            if ports is not None and ports != (node.port, node.controller_port):
                raise ServiceError(
                    f"kafka node {node.node_id} already runs on port {ports[0]} (controller "
                    f"{ports[1]}), not {node.port} ({node.controller_port}): stop it with "
                    "`make down` (python -m infra down kafka), then start it on the new ports"
                )

    def _refuse_other_mode_running(self) -> None:
        for sibling in self.siblings():
            if any(node.running() for node in sibling.nodes):
                mode = sibling.layout.kafka_security
                raise ServiceError(
                    f"kafka already runs in {mode} mode (state in {sibling.home}): stop it "
                    "with `make down` (python -m infra down kafka) before starting it in "
                    f"{self.layout.kafka_security} mode"
                )

    def start(self, timeout: float = 90.0, node_id: int | None = None) -> bool:
        """Start every node (or one) and wait until it serves; False when all already ran.

        Never leaves a half-started cluster: if a node fails to start, the nodes this call
        launched are killed before the error is raised.
        """
        targets = [self.node(node_id)] if node_id else self.nodes
        self._refuse_other_mode_running()
        self._refuse_other_ports()
        if all(node.running() for node in targets):
            return False
        self._prepare()
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            try:
                self._launch(targets, timeout)
                if self.running():
                    self._upgrade_if_older()
                return True
            except ServiceError:
                # Our ports sit in Linux's ephemeral range: an outgoing connection may take one
                # between the free-port check and the JVM's bind. Another try finds it free.
                if attempt == _BIND_ATTEMPTS or not any(n.bind_failed() for n in targets):
                    raise
                print(
                    f"kafka: a port was taken while starting (attempt {attempt}); retrying",
                    file=sys.stderr,
                )
                time.sleep(1.0)  # short-lived connections let go of their port
        return True

    def _launch(self, targets: list[KafkaNode], timeout: float) -> None:
        """Launch ``targets`` and wait until they serve; kill what was launched on failure."""
        launched: list[tuple[KafkaNode, subprocess.Popen[bytes]]] = []
        try:
            # Launch all first: a KRaft node only finishes starting once a quorum of voters runs.
            for node in targets:
                proc = node.launch()
                if proc is not None:
                    launched.append((node, proc))
            for node, proc in launched:
                node.await_started(proc, timeout)
        except ServiceError:
            for node, _ in launched:
                node.kill()
            raise

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Fail unless every node runs (start() already waits for readiness)."""
        if not self.running():
            raise ServiceError("kafka is not running: start it with `make up`")

    def stop(self, timeout: float = 60.0, node_id: int | None = None) -> bool:
        """Stop every node (or one) cleanly; False when none was running.

        Stopping the whole cluster also stops it in the other security mode, so that
        ``make down`` leaves no node behind whichever mode ``make up`` chose.
        """
        targets = [self.node(node_id)] if node_id else list(reversed(self.nodes))
        if node_id is None:
            targets += [node for sibling in self.siblings() for node in reversed(sibling.nodes)]
        stopped = [node.stop(timeout) for node in targets]  # every one, no short-circuit
        return any(stopped)

    def kill(self, node_id: int | None = None) -> bool:
        """SIGKILL every node (or one), as a crash would; False when none was running."""
        targets = [self.node(node_id)] if node_id else self.nodes
        killed = [node.kill() for node in targets]  # every one, no short-circuit
        return any(killed)

    def restart(self, timeout: float = 90.0) -> None:
        """Stop cleanly and start again."""
        self.stop()
        self.start(timeout)

    def remove_state(self) -> None:
        """Delete the cluster's data and logs (stop it first)."""
        shutil.rmtree(self.home, ignore_errors=True)

    def env(self, principal: str | None = None) -> dict[str, str]:
        """Environment variables that point oncepipe at this cluster.

        Secured: the client settings of ``principal`` (default: ``ONCEPIPE_INFRA_KAFKA_PRINCIPAL``,
        else ``admin``), with ``*_FILE`` paths, never a secret.
        """
        env = {"ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}
        if self.security is not None:
            env.update(self.security.client_env(principal or self.principal()))
        return env

    def principal(self) -> str:
        """The component principal ``env`` names: ``ONCEPIPE_INFRA_KAFKA_PRINCIPAL`` or admin."""
        chosen = os.environ.get("ONCEPIPE_INFRA_KAFKA_PRINCIPAL") or "admin"
        if chosen not in COMPONENT_PRINCIPALS:
            raise ServiceError(
                f"ONCEPIPE_INFRA_KAFKA_PRINCIPAL={chosen!r}: choose one of "
                f"{', '.join(COMPONENT_PRINCIPALS)}"
            )
        return chosen

    def super_admin_config(self) -> dict[str, Any]:
        """The librdkafka keys of an admin client running as the broker's (super user) principal."""
        if self.security is None:
            raise ServiceError("ACLs need the secured broker: make up KAFKA_SECURITY=scram-tls")
        return {
            "bootstrap.servers": self.bootstrap_servers,
            **self.security.client_config(BROKER_PRINCIPAL),
        }
