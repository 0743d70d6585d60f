"""librdkafka's own log lines go through the logger, not straight to stderr."""

from __future__ import annotations

import logging
import time

import pytest

from oncepipe.kafka import create_consumer
from oncepipe.logging import LIBRDKAFKA_LOGGER
from oncepipe.settings import Settings


def test_librdkafka_lines_reach_the_logger_and_not_raw_stderr(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger=LIBRDKAFKA_LOGGER)
    consumer = create_consumer(Settings(kafka_bootstrap_servers="127.0.0.1:1"), "g-logs")
    try:
        deadline = time.monotonic() + 30
        # poll() serves the log queue; the refused connection is logged within a second or two.
        while not caplog.records and time.monotonic() < deadline:
            consumer.poll(0.2)
    finally:
        consumer.close()
    records = [r for r in caplog.records if r.name == LIBRDKAFKA_LOGGER]
    assert records, "librdkafka logged nothing through the logger"
    assert any("127.0.0.1:1" in r.getMessage() for r in records)
    assert "%3|" not in capfd.readouterr().err
