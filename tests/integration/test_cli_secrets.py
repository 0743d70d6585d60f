"""A secret scan: a password in every form of the database URL shows up nowhere.

A short real run (topics, the simulator through the outbox, the relay, a consumer) with a
distinctive password in each form psycopg accepts: every command's stdout and stderr, every
log file, and the command lines of every process it started hold none of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from demo.processes import DEMO
from tests.cli_cases import ONCEPIPE, run_all
from tests.fixtures.services import Services
from tests.fixtures.workers import caught_up, wait_until

pytestmark = pytest.mark.integration

EVENTS = 40


def secret_forms(database_url: str) -> dict[str, str]:
    """Form name -> the URL in that form; each form's password is its own distinctive value."""
    params = {k: str(v) for k, v in conninfo_to_dict(database_url).items()}
    user, host, port, dbname = params["user"], params["host"], params["port"], params["dbname"]
    return {
        "Qv3-url-userinfo-pw": f"postgresql://{user}:Qv3-url-userinfo-pw@{host}:{port}/{dbname}",
        "Qv3-url-query-pw": f"postgresql://{user}@{host}:{port}/{dbname}?password=Qv3-url-query-pw",
        "Qv3-keyword-pw": make_conninfo(database_url, password="Qv3-keyword-pw"),  # noqa: S106
        "Qv3-ssl-keyword-pw": make_conninfo(
            database_url,
            sslpassword="Qv3-ssl-keyword-pw",
        ),
    }


def descendants(pid: int) -> set[int]:
    """``pid`` and every process it started that still runs."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text() if (task / "children").exists() else ""
            todo += [int(child) for child in children.split()]
    return found


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    leaked = [secret for secret in secrets if secret in text]
    assert not leaked, f"{leaked} in {where}"


def test_no_password_in_any_output_log_or_command_line(
    services: Services, database_url: str, tmp_path: Path
) -> None:
    forms = secret_forms(database_url)
    secrets = list(forms)
    urls = list(forms.values())
    topic = f"secrets.{uuid.uuid4().hex[:10]}"
    base = {
        **os.environ,
        "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": services.bootstrap_servers,
        "ONCEPIPE_LOG_FORMAT": "json",
        "ONCEPIPE_LOG_LEVEL": "DEBUG",
        "ONCEPIPE_RELAY_POLL_INTERVAL_S": "0.2",
    }

    # The one-shot commands: config with every form, the others each with one of them.
    one_shot = [["migrate", "--dry-run"], ["offsets", "show"], ["inbox", "partitions"], ["config"]]
    outcomes = run_all(
        [(["config", "--json"], {**base, "ONCEPIPE_DATABASE_URL": url}) for url in urls]
        + [
            (args, {**base, "ONCEPIPE_DATABASE_URL": url})
            for args, url in zip(one_shot, urls, strict=True)
        ]
        + [(["topics", "create", "--topic", topic, "--partitions", "2"], base)]
    )
    for outcome in outcomes:
        assert outcome.code == 0, outcome
        assert_clean(outcome.stdout + outcome.stderr, secrets, " ".join(outcome.args))

    # A short run: the daemons log to files; each uses another form.
    logs = {name: tmp_path / f"{name}.log" for name in ("relay", "consume", "simulate")}
    daemons = {
        "relay": (["relay"], urls[0]),
        "consume": (
            [
                *("consume", "--group", "g-secrets", "--topic", topic, "--handler", "clicks"),
                *("--batch-timeout", "0.2", "--session-timeout-ms", "6000"),
            ],
            urls[1],
        ),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, (args, url) in daemons.items():
            with logs[name].open("wb") as log:
                processes[name] = subprocess.Popen(
                    [ONCEPIPE, *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**base, "ONCEPIPE_DATABASE_URL": url},
                )
        with logs["simulate"].open("wb") as log:
            simulated = subprocess.run(
                [
                    *DEMO,
                    "simulate",
                    "--mode",
                    "outbox",
                    "--count",
                    str(EVENTS),
                    "--topic",
                    topic,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**base, "ONCEPIPE_DATABASE_URL": urls[2]},
                check=False,
                timeout=120,
            )
        assert simulated.returncode == 0, logs["simulate"].read_text()
        wait_until(caught_up(database_url, "g-secrets", EVENTS), 120, "the consumer to catch up")
        for name, process in processes.items():
            for pid in descendants(process.pid):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                assert_clean(cmdline.decode(errors="replace"), secrets, f"{name} cmdline")
        with psycopg.connect(database_url) as conn:
            sessions = conn.execute(
                "SELECT string_agg(application_name, ' ') FROM pg_stat_activity"
            ).fetchone()
        assert_clean(str(sessions), secrets, "pg_stat_activity")
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            assert process.wait(timeout=60) == 0, logs[name].read_text()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for name, path in logs.items():
        text = path.read_text()
        assert text, f"{name} logged nothing"
        assert_clean(text, secrets, path.name)
