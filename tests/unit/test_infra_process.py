from __future__ import annotations

from pathlib import Path

import pytest

from infra.process import ServiceError, tail, wait_until


def test_wait_until_returns_as_soon_as_the_condition_holds() -> None:
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), timeout=5, what="thing", interval=0.01)


def test_wait_until_timeout_reports_the_service_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    with pytest.raises(ServiceError, match=r"waiting for broker(.|\n)*line 99") as info:
        wait_until(lambda: False, timeout=0.05, what="broker", log=log, interval=0.01)
    assert "line 69" not in str(info.value)


def test_tail_of_a_missing_log_says_so(tmp_path: Path) -> None:
    assert "no log at" in tail(tmp_path / "missing.log")
