"""Partition leadership in a multi-node cluster: who leads, and is every replica in sync.

Public names: ``leader_of``, ``await_in_sync``.
"""

from __future__ import annotations

import time

from oncepipe.kafka import AdminClient

__all__ = ["await_in_sync", "leader_of"]


def leader_of(admin: AdminClient, topic: str, partition: int) -> int:
    """The node id leading ``topic[partition]`` (-1 while it has no leader)."""
    metadata = admin.list_topics(topic, timeout=10)
    return int(metadata.topics[topic].partitions[partition].leader)


def await_in_sync(admin: AdminClient, topic: str, replicas: int, timeout: float = 60) -> bool:
    """Wait until every partition of ``topic`` has ``replicas`` in-sync replicas."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(topic, timeout=10).topics[topic]
            partitions = list(metadata.partitions.values())
        except Exception:  # noqa: BLE001 - metadata unavailable while a node restarts
            partitions = []
        if partitions and all(len(p.isrs) == replicas for p in partitions):
            return True
        time.sleep(0.5)
    return False
