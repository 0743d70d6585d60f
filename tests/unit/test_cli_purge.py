"""``oncepipe dlq purge`` refuses, before connecting, what would delete too much or is unclear."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.main import app

RUNNER = CliRunner()


def test_a_purge_without_a_filter_is_refused() -> None:
    result = RUNNER.invoke(app, ["dlq", "purge", "--yes"])
    assert result.exit_code == 2
    assert "dlq purge needs a filter: --older-than, --topic or --key" in result.output


def test_an_age_that_is_not_one_is_refused() -> None:
    result = RUNNER.invoke(app, ["dlq", "purge", "--older-than", "soon", "--yes"])
    assert result.exit_code == 2
    assert "'soon' is not an age such as 30m, 12h or 30d" in result.output
