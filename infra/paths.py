"""Where the native services keep their state, caches and ports.

The state folder (git-ignored) holds data, logs and pid files of this clone's services; the
cache folder, outside the clone, holds downloads shared by every clone on the machine.
Every location and port can be overridden by an ``ONCEPIPE_INFRA_*`` environment variable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_KAFKA_VERSION", "InfraLayout", "layout"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KAFKA_VERSION = "4.4.0"


@dataclass(frozen=True)
class InfraLayout:
    """Folders and ports used by the native services."""

    state_dir: Path
    cache_dir: Path
    kafka_port: int
    kafka_controller_port: int
    postgres_port: int
    kafka_brokers: int = 1
    kafka_security: str = "plaintext"
    postgres_security: str = "plaintext"
    kafka_version: str = DEFAULT_KAFKA_VERSION


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(
            f"{name}={raw!r} is not a port number; unset it or give an integer"
        ) from exc


def _kafka_brokers() -> int:
    count = _env_int("ONCEPIPE_INFRA_KAFKA_BROKERS", 1)
    if count not in {1, 3}:
        raise SystemExit(f"ONCEPIPE_INFRA_KAFKA_BROKERS={count}: choose 1 or 3")
    return count


def _kafka_security() -> str:
    mode = os.environ.get("ONCEPIPE_INFRA_KAFKA_SECURITY") or "plaintext"
    if mode not in {"plaintext", "scram-tls"}:
        raise SystemExit(f"ONCEPIPE_INFRA_KAFKA_SECURITY={mode!r}: choose plaintext or scram-tls")
    return mode


def _postgres_security() -> str:
    mode = os.environ.get("ONCEPIPE_INFRA_POSTGRES_SECURITY") or "plaintext"
    if mode not in {"plaintext", "scram-tls"}:
        raise SystemExit(
            f"ONCEPIPE_INFRA_POSTGRES_SECURITY={mode!r}: choose plaintext or scram-tls"
        )
    return mode


def _kafka_version() -> str:
    version = os.environ.get("ONCEPIPE_INFRA_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
    if re.fullmatch(r"4\.\d+\.\d+", version) is None:
        raise SystemExit(
            f"ONCEPIPE_INFRA_KAFKA_VERSION={version!r}: give a Kafka 4.x release such as "
            f"{DEFAULT_KAFKA_VERSION} or 4.1.1 (make up KAFKA_VERSION=...)"
        )
    return version


def layout() -> InfraLayout:
    """Read the layout from the environment, with defaults under the clone and ~/.cache."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return InfraLayout(
        state_dir=Path(os.environ.get("ONCEPIPE_INFRA_STATE_DIR", REPO_ROOT / ".state")).resolve(),
        cache_dir=Path(
            os.environ.get("ONCEPIPE_INFRA_CACHE_DIR", cache_home / "oncepipe")
        ).resolve(),
        kafka_port=_env_int("ONCEPIPE_INFRA_KAFKA_PORT", 29092),
        kafka_controller_port=_env_int("ONCEPIPE_INFRA_KAFKA_CONTROLLER_PORT", 29093),
        postgres_port=_env_int("ONCEPIPE_INFRA_POSTGRES_PORT", 25432),
        kafka_brokers=_kafka_brokers(),
        kafka_security=_kafka_security(),
        postgres_security=_postgres_security(),
        kafka_version=_kafka_version(),
    )
