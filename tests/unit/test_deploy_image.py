"""The worker image and its compose file: linted offline, and each lint catches a planted error.

No Docker engine runs here: the Dockerfile is linted (hadolint) and read, the compose file is
checked against the compose specification (check-jsonschema), neither is built nor run.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml  # type: ignore[import-untyped]

from cli.main import app
from tests.unit.test_deploy_runbooks import parse_command

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose.yml"
BIN = Path(sys.executable).parent


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    """hadolint as `make lint` runs it: every rule down to style fails."""
    return subprocess.run(
        [str(BIN / "hadolint"), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    """The compose file against the compose specification bundled with check-jsonschema."""
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def final_stage(text: str) -> str:
    """The Dockerfile's last stage: from its last FROM to the end."""
    return text[text.rindex("\nFROM ") :]


def test_the_dockerfile_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_shell_form_entrypoint(tmp_path: Path) -> None:
    # A shell between Docker and Python would swallow SIGTERM: the one thing the image must not do.
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        DOCKERFILE.read_text().replace('ENTRYPOINT ["oncepipe"]', "ENTRYPOINT oncepipe")
    )
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3025" in result.stdout


def test_hadolint_catches_a_root_user(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3002" in result.stdout


def test_the_final_stage_runs_oncepipe_as_pid_1_without_root_or_compilers() -> None:
    final = final_stage(DOCKERFILE.read_text())
    assert 'ENTRYPOINT ["oncepipe"]' in final
    users = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert users, "the final stage names no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert not re.search(r"\b(gcc|g\+\+|build-essential|apt-get install|cc1)\b", final)
    assert "/wheels/oncepipe-" in final  # installs the wheel, not the source tree
    health = re.search(r"^HEALTHCHECK .*?CMD (.*)$", final, re.MULTILINE | re.DOTALL)
    assert health is not None
    assert "/livez" in health.group(1)
    assert "python" in health.group(1)
    assert "curl" not in health.group(1)


def test_the_build_stage_copies_every_package_of_the_wheel() -> None:
    # A package added to the wheel but not copied would fail the image's build, which CI never runs.
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    packages = wheel["targets"]["wheel"]["packages"]
    text = DOCKERFILE.read_text()
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for package in packages:
        assert f"COPY {package} ./{package}" in text, f"Dockerfile: COPY {package} ./{package}"
        assert f"!{package}/" in ignored, f".dockerignore: add !{package}/"


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_jsonschema_catches_a_misspelled_compose_key(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yml"
    broken.write_text(COMPOSE.read_text().replace('command: ["relay"]', 'comand: ["relay"]'))
    result = check_compose(broken)
    assert result.returncode != 0
    assert "comand" in result.stdout


def test_compose_runs_a_relay_and_two_consumers_of_one_group_with_commands_that_parse() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    commands = {name: s["command"] for name, s in services.items() if s.get("command")}
    assert [c[0] for c in commands.values()].count("relay") == 1
    consumers = [c for c in commands.values() if c[0] == "consume"]
    assert len(consumers) == 2
    assert len({c[c.index("--group") + 1] for c in consumers}) == 1
    for command in commands.values():
        parse_command(app, command)
    for name in commands:
        env = services[name]["environment"]
        assert "kafka:" in env["ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS"]
        assert "@postgres:" in env["ONCEPIPE_DATABASE_URL"]
        assert "password" not in env["ONCEPIPE_DATABASE_URL"].split("?")[0]
        assert services[name]["secrets"]
