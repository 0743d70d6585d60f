"""The CLI's conventions: --help of every command, env names in option help, --version."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app
from oncepipe import __version__

RUNNER = CliRunner()


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group under ``command``, with the words that invoke it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


ROOT = typer.main.get_command(app)
ALL = list(commands(ROOT))


def test_every_command_is_listed() -> None:
    names = {" ".join(path) for path, _ in ALL}
    for expected in (
        "migrate",
        "config",
        "relay",
        "consume",
        "topics create",
        "offsets show",
        "offsets reset",
        "inbox partitions",
        "dlq replay",
    ):
        assert expected in names  # fmt: skip


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=lambda p: " ".join(p) or "root")
def test_help_of_every_command_works_and_shows_each_option_with_its_env_name(
    path: tuple[str, ...],
) -> None:
    result = RUNNER.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command = dict(ALL)[path]
    flat = " ".join(result.output.split())
    for param in command.params:
        if param.param_type_name != "option" or param.hidden:
            continue
        help_text = (param.help or "").strip()
        assert help_text, f"{' '.join(path)} {param.opts[0]}: empty help"
        for env in re.findall(r"ONCEPIPE_[A-Z0-9_]+", help_text):
            assert env in flat, f"{env} vanished from the help of {' '.join(path)}"


SETTING_FLAGS = {
    ("relay",): ["--batch-size", "--poll-interval", "--listen", "--retention"],
    ("consume",): ["--group", "--topic", "--handler", "--batch-size", "--batch-timeout",
                   "--session-timeout-ms", "--auto-offset-reset"],
    ("topics", "create"): ["--partitions", "--replication-factor"],
    ("inbox", "maintain"): ["--retention-days"],
}  # fmt: skip


@pytest.mark.parametrize("path", list(SETTING_FLAGS), ids=" ".join)
def test_flags_that_override_a_setting_name_its_variable(path: tuple[str, ...]) -> None:
    command = dict(ALL)[path]
    by_flag = {opt: param for param in command.params for opt in param.opts}
    for flag in SETTING_FLAGS[path]:
        assert "[env ONCEPIPE_" in (by_flag[flag].help or ""), f"{' '.join(path)} {flag}"


def test_version_prints_the_version_without_a_command() -> None:
    result = RUNNER.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"oncepipe {__version__}"


def test_shell_completion_is_offered() -> None:
    result = RUNNER.invoke(app, ["--help"])
    assert "--install-completion" in result.output
    assert "--show-completion" in result.output
