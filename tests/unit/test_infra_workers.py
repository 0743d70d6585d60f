"""The worker-process supervisor on tiny Python programs: start, signals, waits, stop-all."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from infra.process import pid_alive, wait_until
from infra.workers import Child, Supervisor

# Says "ready" once its SIGTERM disposition is in place, then waits to be signalled.
SLEEPER = "import signal, time; {setup}print('ready', flush=True); time.sleep(600)"


def _sleeper(processes: Supervisor, name: str, log: Path, *, ignore_sigterm: bool = False) -> Child:
    setup = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_sigterm else ""
    child = processes.start(name, [sys.executable, "-c", SLEEPER.format(setup=setup)], log=log)
    wait_until(lambda: "ready" in child.text() or not child.alive(), timeout=60, what=name)
    assert child.alive(), child.text()
    return child


def test_a_child_gets_the_environment_and_logs_stdout_and_stderr(tmp_path: Path) -> None:
    program = (
        "import os, sys; print(os.environ['GREETING'], flush=True); sys.exit(os.environ['CODE'])"
    )
    with Supervisor({"CODE": "x"}) as processes:
        child = processes.start(
            "talker", [sys.executable, "-c", program], env={"GREETING": "hello"},
            log=tmp_path / "talker.log",
        )  # fmt: skip
        assert child.wait(60) == 1
    assert child.text().splitlines() == ["hello", "x"]  # stdout, then the exit message
    assert child.exit_code == 1
    assert child.killed_by is None


def test_without_a_base_environment_each_start_reads_the_callers_environment_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = "import os; print(os.environ.get('LATE', 'unset'), flush=True)"
    with Supervisor() as processes:
        monkeypatch.setenv("LATE", "set after the supervisor was made")
        child = processes.start("late", [sys.executable, "-c", program], log=tmp_path / "l.log")
        assert child.wait(60) == 0
    assert child.text().strip() == "set after the supervisor was made"


def test_a_restart_appends_to_the_log_and_latest_names_the_new_process(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    with Supervisor() as processes:
        first = processes.start("w", [sys.executable, "-c", "print('one')"], log=log)
        assert first.wait(60) == 0
        second = processes.start("w", [sys.executable, "-c", "print('two')"], log=log, append=True)
        assert second.wait(60) == 0
        assert processes.latest("w") is second
        with pytest.raises(KeyError):
            processes.latest("nobody")
    assert log.read_text().splitlines() == ["one", "two"]


def test_sigterm_stops_a_child_and_the_exit_code_says_so(tmp_path: Path) -> None:
    with Supervisor() as processes:
        child = _sleeper(processes, "sleeper", tmp_path / "s.log")
        assert child.stop(60) == -signal.SIGTERM
    assert child.killed_by is signal.SIGTERM
    assert not child.alive()


def test_sigkill_ends_a_child_as_a_crash_would(tmp_path: Path) -> None:
    with Supervisor() as processes:
        child = _sleeper(processes, "sleeper", tmp_path / "s.log")
        assert child.kill() == -signal.SIGKILL
    assert child.killed_by is signal.SIGKILL


def test_a_stopped_child_is_seen_stopped_and_still_ends_on_sigterm(tmp_path: Path) -> None:
    with Supervisor() as processes:
        child = _sleeper(processes, "sleeper", tmp_path / "s.log")
        child.signal(signal.SIGSTOP)
        wait_until(child.stopped, timeout=60, what="the child to stop")
        assert child.alive()
        assert child.stop(60) == -signal.SIGTERM  # SIGCONT first, so SIGTERM acts
        assert not child.stopped()


def test_stop_all_leaves_no_process_and_kills_one_that_ignores_sigterm(tmp_path: Path) -> None:
    processes = Supervisor()
    polite = [_sleeper(processes, f"p{n}", tmp_path / f"p{n}.log") for n in range(2)]
    stubborn = _sleeper(processes, "stubborn", tmp_path / "stubborn.log", ignore_sigterm=True)
    done = processes.start("done", [sys.executable, "-c", "pass"])
    assert done.wait(60) == 0

    codes = processes.stop_all(grace=1.0)

    assert codes == {polite[0]: -signal.SIGTERM, polite[1]: -signal.SIGTERM, stubborn: None}
    assert stubborn.exit_code == -signal.SIGKILL  # outlived the grace: killed
    assert processes.running() == []
    assert not any(pid_alive(child.pid) for child in processes.children)


def test_leaving_the_block_on_an_error_stops_every_child(tmp_path: Path) -> None:
    started: list[Child] = []

    def run() -> None:
        with Supervisor() as processes:
            started.append(_sleeper(processes, "sleeper", tmp_path / "s.log"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run()
    assert [child.exit_code for child in started] == [-signal.SIGTERM]


def test_kill_all_reaps_every_child(tmp_path: Path) -> None:
    processes = Supervisor()
    children = [_sleeper(processes, f"k{n}", tmp_path / f"k{n}.log") for n in range(2)]
    processes.kill_all()
    assert [child.exit_code for child in children] == [-signal.SIGKILL, -signal.SIGKILL]


def test_a_child_without_a_log_file_has_no_text() -> None:
    with Supervisor() as processes:
        child = processes.start("quiet", [sys.executable, "-c", "pass"])
        assert child.wait(60) == 0
    assert child.text() == child.tail() == ""


def test_waiting_past_the_timeout_raises_and_leaves_the_child_running(tmp_path: Path) -> None:
    with Supervisor() as processes:
        child = _sleeper(processes, "sleeper", tmp_path / "s.log")
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(0.01)
        assert child.alive()


def test_a_piped_child_gives_its_stdout_line_by_line_and_logs_its_stderr(tmp_path: Path) -> None:
    program = "import sys; print('first'); print('last'); print('oops', file=sys.stderr)"
    with Supervisor() as processes:
        child = processes.start(
            "reporter", [sys.executable, "-c", program], log=tmp_path / "err.log", stdout_pipe=True
        )
        assert [line.strip() for line in child.output_lines()] == ["first", "last"]
        assert child.wait(60) == 0
    assert child.text() == "oops\n"


def test_output_lines_of_a_child_without_a_pipe_is_an_error() -> None:
    with Supervisor() as processes:
        child = processes.start("quiet", [sys.executable, "-c", "pass"])
        with pytest.raises(RuntimeError, match="without stdout_pipe"):
            next(child.output_lines())
