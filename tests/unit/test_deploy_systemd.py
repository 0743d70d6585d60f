"""The systemd units pass `systemd-analyze verify` with nothing printed, and it catches errors.

`systemd-analyze verify` exits 0 on an unknown key (it only warns), so any output fails. The
units name /opt/oncepipe/bin/oncepipe; a temporary copy points ExecStart at this virtualenv's
`oncepipe`, so the check that the command exists is real.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
INSTALLED = "/opt/oncepipe/bin/oncepipe"
ONCEPIPE = Path(sys.executable).parent / "oncepipe"
# The template is verified through an instance; the others by their own names.
NAMES = (
    "oncepipe-consume@clicks.service",
    "oncepipe-relay.service",
    "oncepipe-maintain.service",
    "oncepipe-maintain.timer",
)
HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CapabilityBoundingSet=",
    "SystemCallFilter=@system-service",
)
# The consumer's longest batch: batch timeout 1 s + the consumer role's statement_timeout
# (60 s, migration 0014) + its handler; the relay's: pass timeout 10 s + statement_timeout 30 s.
LONGEST_BATCH_S = {"oncepipe-consume@.service": 61, "oncepipe-relay.service": 40}


def copy_units(tmp_path: Path) -> Path:
    """The units in a temporary folder, ExecStart pointing at this virtualenv's oncepipe."""
    folder = tmp_path / "units"
    shutil.copytree(UNITS, folder)
    for unit in folder.glob("*.service"):
        unit.write_text(unit.read_text().replace(INSTALLED, str(ONCEPIPE)))
    return folder


def verify(folder: Path, *names: str) -> str:
    """Everything `systemd-analyze verify` printed, with its exit code when it was not 0."""
    result = subprocess.run(
        ["systemd-analyze", "verify", *(f"./{name}" for name in names)],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    out = (result.stdout + result.stderr).strip()
    return out if result.returncode == 0 else f"exit {result.returncode}: {out}"


def unit_options(path: Path) -> dict[str, list[str]]:
    """``key -> values`` of a unit file (keys may repeat)."""
    options: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            options.setdefault(key, []).append(value)
    return options


def test_the_units_are_where_the_tests_look() -> None:
    names = {"oncepipe-consume@.service", "oncepipe-relay.service", "oncepipe-maintain.service"}
    assert {p.name for p in UNITS.iterdir()} == {*names, "oncepipe-maintain.timer"}
    for unit in UNITS.glob("*.service"):
        assert f"ExecStart={INSTALLED} " in unit.read_text(), unit.name
    assert ONCEPIPE.is_file()


def test_systemd_analyze_verify_prints_nothing(tmp_path: Path) -> None:
    assert verify(copy_units(tmp_path), *NAMES) == ""


def test_verify_catches_an_unknown_key(tmp_path: Path) -> None:
    folder = copy_units(tmp_path)
    unit = folder / "oncepipe-consume@.service"
    unit.write_text(unit.read_text().replace("TimeoutStopSec=", "TimeoutStopSecs="))
    assert "Unknown key 'TimeoutStopSecs'" in verify(folder, *NAMES)


def test_verify_catches_a_command_that_does_not_exist(tmp_path: Path) -> None:
    folder = copy_units(tmp_path)
    unit = folder / "oncepipe-relay.service"
    unit.write_text(unit.read_text().replace(str(ONCEPIPE), str(tmp_path / "nowhere/oncepipe")))
    assert "is not executable" in verify(folder, *NAMES)


@pytest.mark.parametrize("name", sorted(LONGEST_BATCH_S))
def test_workers_restart_on_failure_hardened_and_stop_after_their_longest_batch(name: str) -> None:
    options = unit_options(UNITS / name)
    assert options["Restart"] == ["on-failure"]
    assert options["RestartPreventExitStatus"] == ["2"]  # configuration errors stay down
    assert int(options["TimeoutStopSec"][0]) > LONGEST_BATCH_S[name]
    for line in HARDENING:
        key, value = line.split("=", 1)
        assert options.get(key) == [value], f"{name}: {line}"
    assert any(v.startswith("PGPASSFILE=%d/") for v in options["Environment"][0].split())


def test_the_consume_template_reads_its_instance_settings_file() -> None:
    options = unit_options(UNITS / "oncepipe-consume@.service")
    assert "/etc/oncepipe/consume-%i.env" in options["EnvironmentFile"]


def test_the_timer_starts_maintenance() -> None:
    timer = configparser.ConfigParser(strict=False)
    timer.read(UNITS / "oncepipe-maintain.timer")
    assert timer["Timer"]["Unit"] == "oncepipe-maintain.service"
    assert timer["Timer"]["Persistent"] == "true"
    service = unit_options(UNITS / "oncepipe-maintain.service")
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == [f"{INSTALLED} maintain"]
