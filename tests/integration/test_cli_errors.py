"""Bad configuration and unreachable services: one line, the right exit code, no password.

Every family of bad database URL against every command that reads it, run as the real
``oncepipe`` process (several at once: they mostly wait on imports and sockets).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence

import psycopg
import pytest
import structlog

from cli import main
from demo.app import demo_app
from demo.processes import DEMO
from tests.cli_cases import (
    DAEMONS,
    DATABASE_COMMANDS,
    PRINTING,
    SECRET,
    Outcome,
    bad_dsn_families,
    command_line,
    dsn_forms,
    is_demo_command,
    refused_dsn,
    run_all,
)
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration


def assert_one_clean_line(outcome: Outcome) -> None:
    """A refused command: exactly one line on stderr, nothing on stdout, no secret anywhere."""
    assert SECRET not in outcome.stdout + outcome.stderr, outcome
    assert outcome.stdout == "", outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("oncepipe: "), lines[0]
    assert "Traceback" not in outcome.stderr


@pytest.fixture
def env(services: Services) -> dict[str, str]:
    return {"ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers}


@pytest.fixture
def invoke(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[[Sequence[str], dict[str, str]], Outcome]]:
    """Run the CLI's real entry point in this process (no interpreter start-up to pay)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def call(args: Sequence[str], env: dict[str, str]) -> Outcome:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", ["oncepipe", *args])
        # The demo's simulator has its own command line; both share run_app's error handling.
        command = demo_app if is_demo_command(args) else main.app
        with pytest.raises(SystemExit) as exited:
            main.run_app(command)
        out, err = capsys.readouterr()
        code = exited.value.code
        return Outcome(tuple(args), code if isinstance(code, int) else 1, out, err, 0.0)

    yield call
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


def test_every_command_refuses_a_url_that_can_never_work_with_exit_2_and_no_secret(
    database_url: str,
    env: dict[str, str],
    invoke: Callable[[Sequence[str], dict[str, str]], Outcome],
) -> None:
    for family, (url, code) in bad_dsn_families(database_url).items():
        reachable = family in {"unknown role", "unknown database"}
        for name, args in DATABASE_COMMANDS.items():
            if reachable and name in PRINTING | {"dlq replay"}:
                continue  # well-formed: config prints it masked; dlq reads Kafka first
            outcome = invoke(
                args, {**env, "ONCEPIPE_DATABASE_URL": url, "ONCEPIPE_LOG_FORMAT": "json"}
            )
            assert outcome.code == code, (family, name, outcome)
            assert_one_clean_line(outcome)
            assert "ONCEPIPE_DATABASE_URL" in outcome.stderr, (family, name, outcome.stderr)


def test_the_real_process_refuses_each_kind_in_one_line(
    database_url: str, env: dict[str, str]
) -> None:
    # One family per code path: the settings check, libpq's values, the server's refusal.
    families = bad_dsn_families(database_url)
    chosen = [families[name] for name in ("malformed", "sslmode=bogus", "unknown role")]
    commands = [DATABASE_COMMANDS[name] for name in ("consume", "migrate", "relay")]
    runs = [
        (args, {**env, "ONCEPIPE_DATABASE_URL": url})
        for args, (url, _) in zip(commands, chosen, strict=True)
    ]
    for outcome, (_, code) in zip(run_all(runs), chosen, strict=True):
        assert outcome.code == code, outcome
        assert_one_clean_line(outcome)


def test_config_masks_every_form_and_the_commands_work_with_it(
    database_url: str,
    env: dict[str, str],
    invoke: Callable[[Sequence[str], dict[str, str]], Outcome],
) -> None:
    for url in dsn_forms(database_url).values():
        for args in (["config"], ["config", "--json"], ["offsets", "show"], ["migrate"]):
            outcome = invoke(args, {**env, "ONCEPIPE_DATABASE_URL": url})
            assert outcome.code == 0, outcome
            assert SECRET not in outcome.stdout + outcome.stderr, outcome
            if args[0] == "config":
                assert "***" in outcome.stdout


def test_a_server_that_is_down_fails_the_one_shot_commands_with_exit_1(
    env: dict[str, str], invoke: Callable[[Sequence[str], dict[str, str]], Outcome]
) -> None:
    one_shot = [n for n in DATABASE_COMMANDS if n not in PRINTING | DAEMONS | {"dlq replay"}]
    for name in one_shot:
        outcome = invoke(DATABASE_COMMANDS[name], {**env, "ONCEPIPE_DATABASE_URL": refused_dsn()})
        assert outcome.code == 1, outcome
        assert_one_clean_line(outcome)
        assert "make up" in outcome.stderr


@pytest.mark.parametrize("command", sorted(DAEMONS))
def test_a_daemon_waits_out_a_server_that_is_down_and_stops_on_sigterm(
    command: str, env: dict[str, str]
) -> None:
    process = subprocess.Popen(
        command_line(DATABASE_COMMANDS[command]),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={
            **os.environ,
            **env,
            "ONCEPIPE_DATABASE_URL": refused_dsn(),
            "ONCEPIPE_LOG_FORMAT": "json",
        },
    )
    assert process.stderr is not None
    seen = []
    try:
        # Wait (for lines, no sleep) until the worker itself logs after the start-up check
        # warned: its stop handler is installed by then.
        for line in process.stderr:
            seen.append(line)
            if any("waiting for it" in earlier for earlier in seen[:-1]) and (
                '"component": "preflight"' not in line
            ):
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert any("waiting for it" in line for line in seen), "".join(seen)
    assert process.returncode == 0, "".join(seen) + rest
    assert SECRET not in "".join(seen) + rest


def test_bad_names_and_an_unreachable_broker_are_one_line(
    database_url: str,
    env: dict[str, str],
    invoke: Callable[[Sequence[str], dict[str, str]], Outcome],
) -> None:
    db = {**env, "ONCEPIPE_DATABASE_URL": database_url}
    for args in (
        ["consume", "--group", "g", "--topic", "bad topic!", "--handler", "clicks"],
        ["topics", "create", "--topic", "bad topic!"],
        ["simulate", "--mode", "direct", "--topic", "bad topic!", "--count", "1"],
    ):
        outcome = invoke(args, db)
        assert outcome.code == 2, outcome
        assert_one_clean_line(outcome)
        assert "'bad topic!' is not a valid Kafka topic name" in outcome.stderr
    unreachable = invoke(
        ["topics", "create", "--topic", "t.unreachable"],
        {**db, "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
    )
    assert unreachable.code == 1, unreachable
    assert_one_clean_line(unreachable)
    assert "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS" in unreachable.stderr


def test_simulate_says_so_in_one_line_when_postgresql_ends_its_session(
    database_url: str, env: dict[str, str]
) -> None:
    process = subprocess.Popen(
        [*DEMO, "simulate", "--mode", "outbox", "--count", "100000", "--rate", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            **env,
            "ONCEPIPE_DATABASE_URL": database_url,
        },
    )
    try:
        with psycopg.connect(database_url, autocommit=True) as admin:
            # Wait for the simulator's session, then end it as a server shutdown would.
            terminated = False
            while not terminated and process.poll() is None:
                row = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'oncepipe-simulator' AND datname = current_database()"
                ).fetchone()
                terminated = bool(row and row[0])
                if not terminated:
                    admin.execute("SELECT pg_sleep(0.05)")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    outcome = Outcome((), process.returncode, out, err, 0.0)
    assert outcome.code == 1, outcome
    assert "Traceback" not in err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("oncepipe: PostgreSQL ended the session during the run")
    )
