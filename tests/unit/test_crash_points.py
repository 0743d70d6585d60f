from __future__ import annotations

import subprocess
import sys

from oncepipe.crash import crash_point
from oncepipe.settings import Settings

SCRIPT = """
from oncepipe.crash import crash_point
from oncepipe.settings import Settings
settings = Settings(crash_points="demo.point")
crash_point(settings, "other.point")
print("passed other.point", flush=True)
crash_point(settings, "demo.point")
print("never printed", flush=True)
"""


def test_a_configured_crash_point_kills_the_process_with_sigkill() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False
    )
    assert result.returncode == -9
    assert result.stdout == "passed other.point\n"
    assert "crash point demo.point reached" in result.stderr


def test_crash_points_are_inert_when_not_configured() -> None:
    crash_point(Settings(), "relay.after_ack")
