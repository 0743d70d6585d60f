"""``KafkaConsumer.close(timeout_s=...)`` returns when the client's close does not."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from oncepipe.kafka import KafkaConsumer


class _Client:
    """Stands in for confluent-kafka's Consumer: only ``close`` is called."""

    def __init__(self, *, blocks: bool = False, fails: bool = False) -> None:
        self.release = threading.Event()
        self.closed = threading.Event()
        self._blocks = blocks
        self._fails = fails

    def close(self) -> None:
        if self._blocks:
            self.release.wait(30)
        if self._fails:
            raise RuntimeError("Consumer closed")
        self.closed.set()


def _consumer(client: _Client) -> KafkaConsumer:
    return KafkaConsumer(cast("Any", client))


def test_a_close_that_finishes_in_time_returns_true() -> None:
    client = _Client()
    assert _consumer(client).close(timeout_s=5) is True
    assert client.closed.is_set()


def test_a_close_that_hangs_is_left_behind_and_returns_false() -> None:
    client = _Client(blocks=True)
    try:
        assert _consumer(client).close(timeout_s=0.1) is False
        assert not client.closed.is_set()
    finally:
        client.release.set()
    assert client.closed.wait(5), "the abandoned close goes on in its own thread"


def test_a_close_that_fails_raises_in_the_callers_thread() -> None:
    with pytest.raises(RuntimeError, match="Consumer closed"):
        _consumer(_Client(fails=True)).close(timeout_s=5)


def test_without_a_bound_close_is_the_clients_own() -> None:
    client = _Client()
    assert _consumer(client).close() is True
    assert client.closed.is_set()
