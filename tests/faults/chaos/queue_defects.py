"""A deliberately broken queue-mode worker the queue checks must catch (``defects.py`` runs it).

``queue_ack_before_commit``: each transaction's records are acknowledged ACCEPT (and the
acknowledgements committed to the broker) BEFORE the PostgreSQL transaction runs, instead of
after its COMMIT. A worker killed between the two has told the share group its records are
done while their effects never committed: nobody gets them again, the events are lost.

Public names: ``queue_ack_before_commit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["queue_ack_before_commit"]


def queue_ack_before_commit() -> None:
    """Patch ``QueueRuntime`` to accept each transaction's records before it runs."""
    from consumers.queue_runtime import QueueRuntime

    real_apply, real_acknowledge = QueueRuntime._apply, QueueRuntime._acknowledge
    early: set[int] = set()  # the records accepted already (by identity)

    def accept_first(self: QueueRuntime, records: Sequence[Any], killers: Sequence[Any]) -> bool:
        real_acknowledge(self, records, [])
        early.update(id(record) for record in records)
        return real_apply(self, records, killers)

    def acknowledge_rest(
        self: QueueRuntime, accepted: Sequence[Any], released: Sequence[Any]
    ) -> None:
        real_acknowledge(
            self,
            [r for r in accepted if id(r) not in early],
            [r for r in released if id(r) not in early],
        )

    QueueRuntime._apply = accept_first  # type: ignore[method-assign]
    QueueRuntime._acknowledge = acknowledge_rest  # type: ignore[method-assign]
