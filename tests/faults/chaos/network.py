"""The network paths of a chaos run with ``--network``: TCP proxies the harness owns.

Consumers reach PostgreSQL through one proxy; consumers and relays reach every Kafka node
through a proxy of its own. For Kafka the broker's PROXIED listener advertises the proxy's
address (``infra.kafka.node.KafkaNode.proxy_port``), so a client bootstrapped at the proxies
also reaches the partition leaders through them: no broker connection goes around a proxy.
Proxies rather than network namespaces because namespaces need root and a veth setup per
worker, while a proxy is a plain socket program that also sees the PostgreSQL protocol well
enough to lose exactly the reply to a COMMIT.

The simulators, the monitor and the checks connect directly: faults hit the pipeline, not the
evidence.

Public names: ``Network``.
"""

from __future__ import annotations

from psycopg.conninfo import make_conninfo

from infra import Kafka, Postgres
from tests.faults.netproxy import TcpProxy

__all__ = ["Network"]


class Network:
    """One proxy in front of PostgreSQL and one per Kafka node."""

    def __init__(self, kafka: Kafka, postgres: Postgres) -> None:
        self.postgres = TcpProxy("127.0.0.1", postgres.port)
        self.brokers = [
            TcpProxy("127.0.0.1", node.proxied_port, port=node.proxy_port) for node in kafka.nodes
        ]
        self.bootstrap_servers = kafka.proxied_bootstrap_servers

    def database_url(self, url: str) -> str:
        """``url`` with the PostgreSQL proxy's port."""
        return make_conninfo(url, host="127.0.0.1", port=str(self.postgres.port))

    def close(self) -> None:
        """Stop every proxy and drop their connections."""
        for proxy in [self.postgres, *self.brokers]:
            proxy.close()
