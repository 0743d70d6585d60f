"""UUIDv7 event ids (schemas.ids): the layout of RFC 9562, so PostgreSQL reads their time."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from schemas import uuid7, uuid7_time


def test_a_uuid7_is_version_7_of_the_rfc_variant_and_carries_now() -> None:
    before = time.time_ns() // 1_000_000
    event_id = uuid7()
    after = time.time_ns() // 1_000_000

    assert event_id.version == 7
    assert event_id.variant == uuid.RFC_4122
    assert before <= event_id.int >> 80 <= after


def test_a_given_time_is_kept_to_the_millisecond_and_the_rest_is_random() -> None:
    moment = datetime(2026, 11, 30, 3, 4, 5, 678_000, tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)

    ids = {uuid7(ms) for _ in range(1000)}

    assert len(ids) == 1000
    assert {uuid7_time(i) for i in ids} == {moment}


def test_the_rfc_example_reads_back_and_other_versions_carry_no_time() -> None:
    rfc = uuid.UUID("017f22e2-79b0-7cc3-98c4-dc0c0c07398f")  # RFC 9562, appendix A.6

    assert uuid7_time(rfc) == datetime(2022, 2, 22, 19, 22, 22, tzinfo=UTC)
    assert uuid7_time(uuid.uuid4()) is None
    assert uuid7_time(uuid.uuid5(uuid.NAMESPACE_DNS, "example.org")) is None


def test_a_time_outside_48_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="48-bit"):
        uuid7(1 << 48)
    with pytest.raises(ValueError, match="48-bit"):
        uuid7(-1)
