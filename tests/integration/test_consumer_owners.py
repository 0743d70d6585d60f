"""A zombie's failures do not count towards a record's attempts (the owner claims its partition)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from consumers.decoding import Rejected
from consumers.failures import FailureLog, NotOwnerError, claim
from oncepipe.db import connect
from oncepipe.settings import Settings

pytestmark = pytest.mark.integration

GROUP = "g-owners"


def _failing(offset: int = 7) -> Rejected:
    return Rejected("t", 0, offset, None, b"x", (), None, "handle", RuntimeError("boom"))


def _claim(settings: Settings, owner: uuid.UUID) -> None:
    with connect(settings) as conn, conn.cursor() as cursor:
        claim(cursor, GROUP, owner, [("t", 0)])
        conn.commit()


def _attempts(settings: Settings) -> int | None:
    with connect(settings) as conn:
        row = conn.execute(
            'SELECT attempts FROM oncepipe.consumer_failures WHERE "offset" = 7'
        ).fetchone()
    return None if row is None else int(row[0])


@pytest.fixture
def logs(settings: Settings) -> Iterator[tuple[FailureLog, FailureLog, uuid.UUID, uuid.UUID]]:
    zombie_id, owner_id = uuid.uuid4(), uuid.uuid4()
    zombie = FailureLog(lambda: connect(settings), GROUP, zombie_id)
    owner = FailureLog(lambda: connect(settings), GROUP, owner_id)
    yield zombie, owner, zombie_id, owner_id
    zombie.close()
    owner.close()


def test_a_worker_that_lost_its_partition_counts_no_failure(
    settings: Settings, logs: tuple[FailureLog, FailureLog, uuid.UUID, uuid.UUID]
) -> None:
    zombie, owner, zombie_id, owner_id = logs
    _claim(settings, zombie_id)
    assert zombie.record(_failing()).attempts == 1
    _claim(settings, owner_id)  # the partition moved on while the zombie stalled

    with pytest.raises(NotOwnerError, match="another owner"):
        zombie.record(_failing())
    with pytest.raises(NotOwnerError):
        zombie.record(_failing())

    assert _attempts(settings) == 1
    assert owner.record(_failing()).attempts == 2


def test_without_a_claim_failures_count_as_before(settings: Settings) -> None:
    log = FailureLog(lambda: connect(settings), GROUP, uuid.uuid4())
    try:
        assert log.record(_failing()).attempts == 1
        assert log.record(_failing()).attempts == 2
    finally:
        log.close()
    anonymous = FailureLog(lambda: connect(settings), GROUP)
    try:
        assert anonymous.record(_failing()).attempts == 3
    finally:
        anonymous.close()
