"""An idle queue-mode member is visible in ``oncepipe status`` before any record reaches it."""

from __future__ import annotations

from collections.abc import Callable

from tests.fixtures.workers import WorkerPool, wait_until
from tests.integration.test_queue_mode import make_queue_pool, queue_status

__all__ = ["make_queue_pool"]  # the fixture, imported for this module's test


def test_an_idle_member_shows_in_status_before_any_record(
    make_queue_pool: Callable[[int], WorkerPool],
) -> None:
    pool = make_queue_pool(1)
    worker = pool.start()
    wait_until(worker.logged("queue consumer started"), 60, f"{worker.name} to start")

    def listed() -> bool:
        return len(queue_status(pool)["queue_members"]) == 1

    wait_until(listed, 60, "the idle member's row in oncepipe status")
    member = queue_status(pool)["queue_members"][0]
    assert member["acquired"] == 0
    assert not member["left"]
    assert worker.terminate() == 0, worker.text()[-3000:]
    assert queue_status(pool)["queue_members"][0]["left"]
