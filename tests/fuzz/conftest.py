"""Report how many inputs each fuzz target tried, so a long run states its size."""

from __future__ import annotations

import pytest

from tests.fuzz.profiles import INPUTS, PROFILE


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not INPUTS:
        return
    terminalreporter.section(f"fuzz inputs ({PROFILE} profile)")
    for target, count in sorted(INPUTS.items()):
        terminalreporter.write_line(f"{target}: {count:,}")
