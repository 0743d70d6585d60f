"""Hooks: the no-op default, and the crash and stall points read from the environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from oncepipe.hooks import (
    NO_HOOKS,
    BatchCommitted,
    BatchStarted,
    FaultPoints,
    RecordDeadLettered,
    RowsPublished,
    hooks_from_environment,
)
from oncepipe.settings import load_settings

CRASH = """
from oncepipe.hooks import hooks_from_environment
hooks = hooks_from_environment()
hooks.point("other.point")
print("passed other.point", flush=True)
hooks.point("demo.point")
print("never printed", flush=True)
"""

STALL = """
from oncepipe.hooks import hooks_from_environment
hooks = hooks_from_environment()
hooks.point("demo.point")
print("resumed", flush=True)
hooks.point("demo.point")
print("passed it again", flush=True)
"""


def _run(script: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "ONCEPIPE_CRASH_POINTS": "", "ONCEPIPE_CONSUMER_STALL_POINTS": "",
             **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_no_points_configured_gives_the_hooks_that_do_nothing() -> None:
    assert hooks_from_environment({}) is NO_HOOKS
    assert hooks_from_environment({"ONCEPIPE_CRASH_POINTS": " , "}) is NO_HOOKS


def test_the_default_hooks_do_nothing_at_any_point_or_event() -> None:
    for name in ("relay.after_ack", "consumer.after_commit", "consumer.before_transaction"):
        NO_HOOKS.point(name)
    NO_HOOKS.batch_started(BatchStarted("g", 1))
    NO_HOOKS.batch_committed(BatchCommitted("g", 1, 1, 0, 0, 0, 0, (uuid.uuid4(),)))
    NO_HOOKS.record_dead_lettered(RecordDeadLettered("g", "t", 0, 5, 1, "BadMagicError"))
    NO_HOOKS.rows_published(RowsPublished(3, 0))


def test_points_are_comma_separated_names() -> None:
    hooks = hooks_from_environment(
        {
            "ONCEPIPE_CRASH_POINTS": "relay.after_ack, consumer.before_commit,",
            "ONCEPIPE_CONSUMER_STALL_POINTS": " consumer.before_transaction ",
        }
    )
    assert isinstance(hooks, FaultPoints)
    assert hooks.crash == {"relay.after_ack", "consumer.before_commit"}
    assert hooks.stall == {"consumer.before_transaction"}


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCEPIPE_CRASH_POINTS", "relay.after_mark")
    monkeypatch.delenv("ONCEPIPE_CONSUMER_STALL_POINTS", raising=False)
    hooks = hooks_from_environment()
    assert isinstance(hooks, FaultPoints)
    assert hooks.crash == {"relay.after_mark"}
    assert hooks.stall == frozenset()


def test_crash_points_are_not_a_setting_any_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # `oncepipe config` prints the settings: test-only points are not among them.
    monkeypatch.setenv("ONCEPIPE_CRASH_POINTS", "relay.after_ack")
    assert "crash_points" not in load_settings().masked()


def test_a_crash_point_kills_the_process_with_sigkill() -> None:
    process = _run(CRASH, ONCEPIPE_CRASH_POINTS="demo.point")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert stdout == "passed other.point\n"
    assert "oncepipe: crash point demo.point reached, SIGKILL" in stderr


def test_a_stall_point_stops_the_process_once() -> None:
    process = _run(STALL, ONCEPIPE_CONSUMER_STALL_POINTS="demo.point")
    try:
        _, status = os.waitpid(process.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        assert os.WSTOPSIG(status) == signal.SIGSTOP
        process.send_signal(signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stdout == "resumed\npassed it again\n"
    assert stderr.count("oncepipe: stall point demo.point reached, SIGSTOP") == 1
