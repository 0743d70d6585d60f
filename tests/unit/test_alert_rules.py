"""The shipped alert rules load in Prometheus and fire (or stay quiet) as their tests say."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.observe import promtool

ALERTS = Path(__file__).resolve().parents[2] / "docs" / "alerts"


def test_the_alert_rules_are_valid() -> None:
    out = promtool("check", "rules", str(ALERTS / "oncepipe.rules.yml"))
    assert "SUCCESS: 7 rules found" in out


def test_the_alert_rules_pass_their_unit_tests() -> None:
    out = promtool("test", "rules", "oncepipe.rules.test.yml", cwd=str(ALERTS))
    assert "SUCCESS" in out
