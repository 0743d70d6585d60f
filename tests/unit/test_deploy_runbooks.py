"""The runbooks: one per alert rule, each rule's runbook_url pointing at it, every command real.

Every ``oncepipe ...`` line in docs/runbooks.md is parsed by the real command line (click's
own parser: the subcommands, each option, required ones and ranges), without running it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml  # type: ignore[import-untyped]

from cli.main import app

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks.md"
RULES = REPO / "docs" / "alerts" / "oncepipe.rules.yml"
RULE_TESTS = REPO / "docs" / "alerts" / "oncepipe.rules.test.yml"
# Relative to the repository: point it at wherever your copy of the docs is served.
URL = "docs/runbooks.md#"
# Situations a worker reports in its log and `oncepipe status`, without an alert rule of their own.
WITHOUT_RULE = ("partition-held", "stored-offset-out-of-range")


class CommandLineError(Exception):
    """The command line refused a command (click's usage error, exit 2)."""


def parse_command(app_: typer.Typer, words: list[str]) -> Any:
    """Parse ``words`` (after ``oncepipe``) as the CLI would; raise ``CommandLineError`` if wrong.

    Walks the subcommands, then lets the last command parse its arguments and options (names,
    required ones, click's ranges); nothing is run, so values the command body validates
    itself (through its settings model) are not checked. Duck-typed: typer may bring click or
    a copy of its own.
    """
    command: Any = typer.main.get_command(app_)
    path = ["oncepipe"]
    rest = list(words)
    while (subcommands := getattr(command, "commands", None)) is not None:
        if not rest or rest[0] not in subcommands:
            raise CommandLineError(f"{' '.join(path)}: no command {rest[:1]}")
        path.append(rest[0])
        command = subcommands[rest.pop(0)]
    try:
        with command.make_context(" ".join(path), rest):
            pass
    except Exception as exc:
        if getattr(exc, "exit_code", None) != 2:
            raise
        raise CommandLineError(f"{' '.join(path)}: {exc.format_message()}") from exc  # type: ignore[attr-defined]
    return command


def runbook_commands(text: str) -> list[str]:
    """Every ``oncepipe ...`` command in the runbooks' code spans and blocks."""
    spans = re.findall(r"`(oncepipe [^`]+)`", text)
    blocks = re.findall(r"^\$ (oncepipe .+)$", text, re.MULTILINE)
    return spans + blocks


def anchors(text: str) -> set[str]:
    """GitHub's anchors of the markdown headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def rules() -> list[dict[str, Any]]:
    """The alert rules shipped in docs/alerts."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


COMMANDS = runbook_commands(RUNBOOKS.read_text())


def test_the_runbooks_name_commands() -> None:
    assert len(COMMANDS) >= 15
    verbs = {shlex.split(c)[1] for c in COMMANDS}
    assert {"status", "dlq", "offsets", "consume", "relay"} <= verbs


@pytest.mark.parametrize("line", COMMANDS)
def test_every_command_in_the_runbooks_parses(line: str) -> None:
    words = shlex.split(line)
    assert words[0] == "oncepipe"
    parse_command(app, words[1:])


@pytest.mark.parametrize(
    "line",
    [
        "oncepipe offsets reset --group g --topic t --partition 3",  # --to is required
        "oncepipe dlq show",  # its reference is required
        "oncepipe dlq replay --topics events.click.dlq",  # no such option
        "oncepipe offset show",  # no such command
        "oncepipe status --watch 0.1",  # below its range
    ],
)
def test_the_parser_check_catches_a_wrong_command(line: str) -> None:
    with pytest.raises(CommandLineError):
        parse_command(app, shlex.split(line)[1:])


def test_every_alert_rule_has_a_runbook_its_annotation_points_at() -> None:
    text = RUNBOOKS.read_text()
    headings = anchors(text)
    for rule in rules():
        url = rule["annotations"].get("runbook_url", "")
        assert url.startswith(URL), f"{rule['alert']}: runbook_url {url!r}"
        anchor = url.removeprefix(URL)
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in headings, f"docs/runbooks.md has no heading for #{anchor}"
    for anchor in WITHOUT_RULE:
        assert anchor in headings


def test_each_runbook_says_what_it_means_how_to_confirm_and_what_to_do() -> None:
    sections = re.split(r"^## ", RUNBOOKS.read_text(), flags=re.MULTILINE)[1:]
    assert len(sections) >= len(rules()) + len(WITHOUT_RULE)
    for section in sections:
        title = section.splitlines()[0]
        for part in ("**Means**", "**Confirm**", "**Do**"):
            assert part in section, f"{title}: no {part}"
        assert "`oncepipe " in section or "$ oncepipe " in section, f"{title}: no command"


def test_the_rule_tests_expect_each_runbook_url() -> None:
    # promtool compares every annotation: the tests must expect the URL too (they run in
    # tests/unit/test_alert_rules.py).
    urls = {r["alert"]: r["annotations"]["runbook_url"] for r in rules()}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    for case in tests:
        for check in case.get("alert_rule_test", []):
            for alert in check["exp_alerts"]:
                assert alert["exp_annotations"]["runbook_url"] == urls[check["alertname"]]
