"""The secret scan in secured mode: no Kafka password and no database password anywhere.

The scan of ``test_cli_secrets`` against the secured broker, each component on its own
principal: every command's stdout and stderr (``make env`` included), every log file (the
broker's too), and the command lines of every process started (the broker's JVM included)
hold none of the principals' passwords nor the database URL's; the processes' environments
hold no Kafka password either (they carry ``*_FILE`` paths).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from demo.processes import DEMO
from infra.workers import Supervisor
from tests.cli_cases import ONCEPIPE, run_all
from tests.fixtures.secured import SecuredKafka
from tests.fixtures.workers import caught_up, wait_until
from tests.integration.test_cli_secrets import assert_clean, descendants, secret_forms

pytestmark = pytest.mark.integration

EVENTS = 40


def proc_text(pid: int, name: str) -> str:
    """``/proc/<pid>/<name>`` with its NUL separators as spaces ("" once the process is gone)."""
    try:
        return (
            Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def test_no_kafka_or_database_password_in_any_output_log_command_line_or_environment(
    secured_kafka: SecuredKafka, database_url: str, tmp_path: Path
) -> None:
    forms = secret_forms(database_url)
    urls = list(forms.values())
    kafka_secrets = secured_kafka.passwords()
    secrets = [*forms, *kafka_secrets]
    topic = f"secrets.{uuid.uuid4().hex[:10]}"
    group = f"g-secrets-{uuid.uuid4().hex[:6]}"
    secured_kafka.grant([topic], group)
    base = {
        **os.environ,
        "ONCEPIPE_LOG_FORMAT": "json",
        "ONCEPIPE_LOG_LEVEL": "DEBUG",
        "ONCEPIPE_RELAY_POLL_INTERVAL_S": "0.2",
    }

    def env(principal: str, url: str) -> dict[str, str]:
        return {**base, **secured_kafka.env(principal), "ONCEPIPE_DATABASE_URL": url}

    # `make env` of the secured broker: paths, never a secret.
    layout = secured_kafka.kafka.layout
    infra_env = subprocess.run(
        [sys.executable, "-m", "infra", "env"],
        env={
            **base,
            "ONCEPIPE_INFRA_STATE_DIR": str(layout.state_dir),
            "ONCEPIPE_INFRA_KAFKA_PORT": str(layout.kafka_port),
            "ONCEPIPE_INFRA_KAFKA_CONTROLLER_PORT": str(layout.kafka_controller_port),
            "ONCEPIPE_INFRA_KAFKA_SECURITY": "scram-tls",
            "ONCEPIPE_INFRA_KAFKA_PRINCIPAL": "relay",
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert infra_env.returncode == 0, infra_env.stderr
    assert str(secured_kafka.security.password_file("relay")) in infra_env.stdout
    assert_clean(infra_env.stdout + infra_env.stderr, secrets, "infra env")

    one_shot = [["offsets", "show"], ["inbox", "partitions"], ["config"], ["config", "--json"]]
    outcomes = run_all(
        [(args, env("admin", url)) for args, url in zip(one_shot, urls, strict=True)]
        + [(["topics", "create", "--topic", topic, "--partitions", "2"], env("admin", urls[0]))]
    )
    for outcome in outcomes:
        assert outcome.code == 0, outcome
        assert_clean(outcome.stdout + outcome.stderr, secrets, " ".join(outcome.args))

    logs = {name: tmp_path / f"{name}.log" for name in ("relay", "consume", "simulate")}
    consume = ("consume", "--group", group, "--topic", topic, "--handler", "clicks")
    daemons = {
        "relay": ("relay", ["relay"], urls[0]),
        "consume": ("consumer", [*consume, "--batch-timeout", "0.2"], urls[1]),
    }
    processes = Supervisor()
    with processes:
        children = {
            name: processes.start(name, [ONCEPIPE, *args], env=env(principal, url), log=logs[name])
            for name, (principal, args, url) in daemons.items()
        }
        simulate = [*DEMO, "simulate", "--mode", "outbox", "--count", str(EVENTS), "--topic", topic]
        with logs["simulate"].open("wb") as log:
            simulated = subprocess.run(
                simulate,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env("producer", urls[2]),
                check=False,
                timeout=120,
            )
        assert simulated.returncode == 0, logs["simulate"].read_text()
        wait_until(caught_up(database_url, group, EVENTS), 120, "the consumer to catch up")

        broker = secured_kafka.kafka.pid()
        assert broker is not None
        assert_clean(proc_text(broker, "cmdline"), secrets, "the broker's command line")
        for name, child in children.items():
            for pid in descendants(child.popen.pid):
                assert_clean(proc_text(pid, "cmdline"), secrets, f"{name} cmdline")
                # The database URL travels in the environment by design; Kafka's secrets do not.
                assert_clean(proc_text(pid, "environ"), kafka_secrets, f"{name} environment")
        for child in children.values():
            child.signal(signal.SIGTERM)
        for name, child in children.items():
            assert child.popen.wait(timeout=60) == 0, logs[name].read_text()

    for name, path in logs.items():
        text = path.read_text()
        assert text, f"{name} logged nothing"
        assert_clean(text, secrets, path.name)
    broker_logs = sorted(secured_kafka.kafka.nodes[0].logs_dir.glob("*"))
    assert broker_logs
    for path in broker_logs:
        assert_clean(path.read_text(errors="replace"), kafka_secrets, f"broker log {path.name}")
