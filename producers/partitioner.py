"""The partition a record goes to, chosen by the relay before it sends.

Keyed records go where librdkafka's default partitioner (``consistent_random``) sends them:
CRC-32 of the key modulo the partition count, so producers that let librdkafka choose agree
with the relay. Records without a key (or with an empty one) go to a random partition that is
not held. Knowing the partition before sending is what lets the relay hold back one stuck
partition's rows while every other partition keeps flowing.

Public names: ``key_partition``, ``choose_partition``.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Container

__all__ = ["choose_partition", "key_partition"]


def key_partition(key: bytes, partitions: int) -> int:
    """The partition librdkafka's ``consistent_random`` gives a non-empty key."""
    return zlib.crc32(key) % partitions


def choose_partition(key: bytes | None, partitions: int, held: Container[int] = ()) -> int:
    """The partition of ``key``; a record without a key avoids the ``held`` partitions."""
    if key:
        return key_partition(key, partitions)
    free = [p for p in range(partitions) if p not in held]
    return random.choice(free or range(partitions))  # noqa: S311 - spreading load, not secrets
