"""The bad-input table: each family of bad input, its exit code, time to exit, first line.

python -m tests.cli_error_table   (ONCEPIPE_* pointing at running services: eval "$(make env)")

Prints a Markdown table, one row per case; a daemon still running after 8 s is reported as
"waits" (then stopped with SIGTERM), which is right only for an outage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence

from tests.cli_cases import (
    DATABASE_COMMANDS,
    PRINTING,
    SECRET,
    Outcome,
    bad_dsn_families,
    command_line,
    refused_dsn,
    run_all,
)

DAEMON_GRACE_S = 8.0
Case = tuple[str, str, Sequence[str], dict[str, str]]  # family, case, args, env


def _daemon(args: Sequence[str], env: dict[str, str]) -> Outcome:
    """Run a daemon for a few seconds: it exits (refused) or is still waiting (an outage)."""
    started = time.monotonic()
    process = subprocess.Popen(
        command_line(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ONCEPIPE_LOG_FORMAT": "json", **env},
    )
    try:
        out, err = process.communicate(timeout=DAEMON_GRACE_S)
        return Outcome(tuple(args), process.returncode, out, err, time.monotonic() - started)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        return Outcome(tuple(args), -1, out, err, time.monotonic() - started)


def cases(database_url: str) -> list[Case]:
    """Every case, by family."""
    db = {"ONCEPIPE_DATABASE_URL": database_url}
    found: list[Case] = []
    for family, (url, _) in bad_dsn_families(database_url).items():
        for name, args in DATABASE_COMMANDS.items():
            if family in {"unknown role", "unknown database"} and name in PRINTING:
                continue
            found.append((f"bad DSN: {family}", name, args, {"ONCEPIPE_DATABASE_URL": url}))
    for name, args in DATABASE_COMMANDS.items():
        if name not in PRINTING:
            found.append(("PostgreSQL down", name, args, {"ONCEPIPE_DATABASE_URL": refused_dsn()}))
    no_kafka = {**db, "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    for args in (
        ["topics", "create", "--topic", "t.cli"],
        ["offsets", "reset", "--group", "g", "--topic", "t.cli", "--to", "earliest", "--yes"],
        ["dlq", "list", "--topic", "t.cli"],
    ):
        found.append(("Kafka down", " ".join(args[:2]), args, no_kafka))
    bad_topic = "bad topic!"
    for args in (
        ["consume", "--group", "g", "--topic", bad_topic, "--handler", "clicks"],
        ["topics", "create", "--topic", bad_topic],
        ["simulate", "--mode", "direct", "--topic", bad_topic, "--count", "1"],
        ["consume", "--group", "g", "--topic", "t.cli", "--handler", "no.such:handler"],
        ["offsets", "reset", "--group", "g", "--topic", bad_topic, "--to", "earliest", "--yes"],
    ):
        found.append(("bad name", " ".join(args[:2]), args, db))
    for args, env in (
        (["simulate", "--mode", "sideways"], db),
        (["simulate", "--count", "-1"], db),
        (
            ["consume", "--group", "g", "--topic", "t", "--handler", "clicks", "--batch-size", "0"],
            db,
        ),
        (["relay", "--batch-size", "0"], db),
        (["offsets", "reset", "--group", "g", "--topic", "t.cli", "--to", "sideways"], db),
        (["migrate", "--no-such-flag"], db),
        (["config"], {**db, "ONCEPIPE_LOG_LEVEL": "LOUD"}),
        (["relay"], {**db, "ONCEPIPE_PRODUCER_COMPRESSION": "zip"}),
        ([], db),
    ):
        found.append(("bad flag or setting", " ".join(args[:2]) or "(none)", args, env))
    return found


def main() -> None:
    """Run every case (four at a time) and print the table."""
    database_url = os.environ["ONCEPIPE_DATABASE_URL"]
    all_cases = cases(database_url)
    daemons = {"relay", "consume"}
    one_shot = [(args, env) for _, _, args, env in all_cases if not set(args[:1]) & daemons]
    outcomes = iter(run_all(one_shot))
    print("| family | command | exit | seconds | first line |")
    print("|---|---|---|---|---|")
    for family, name, args, env in all_cases:
        outcome = _daemon(args, env) if set(args[:1]) & daemons else next(outcomes)
        code = "waits" if outcome.code == -1 else str(outcome.code)
        line = outcome.first_line.replace("|", "\\|")[:150]
        leaked = " **SECRET PRINTED**" if SECRET in outcome.stdout + outcome.stderr else ""
        print(f"| {family} | {name} | {code} | {outcome.seconds:.1f} | {line}{leaked} |")


if __name__ == "__main__":
    main()
