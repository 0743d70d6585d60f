"""Which Kafka version formatted a state folder, and its in-place upgrade to a newer one.

A newer broker reads an older one's logs as they are, but keeps the cluster at the old
metadata version (and the old transaction, group and share feature levels) until they are
raised. ``upgrade_features`` raises them with the features tool (``FeatureCommand``, in the
``kafka-tools`` jar) through the controller listener, which is plaintext on loopback in every
security mode. Going back is impossible: a metadata version is never lowered, so a folder
formatted by a newer Kafka is refused with what to do instead.

Public names: ``VERSION_FILE``, ``LEGACY_VERSION``, ``recorded_version``, ``refuse_downgrade``,
``release``, ``needs_upgrade``, ``feature_levels``, ``upgrade_features``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from infra.process import ServiceError

__all__ = [
    "LEGACY_VERSION",
    "VERSION_FILE",
    "feature_levels",
    "needs_upgrade",
    "recorded_version",
    "refuse_downgrade",
    "release",
    "upgrade_features",
]

VERSION_FILE = "kafka.version"
# State folders formatted before the version was recorded were all formatted by this one.
LEGACY_VERSION = "4.1.1"
FEATURE_TOOL = "org.apache.kafka.tools.FeatureCommand"
# kraft.version 1 (dynamic quorum) needs a quorum bootstrapped for it; ours lists static voters,
# as a fresh format of the same config does.
_KEPT_FEATURES = {"kraft.version"}


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def release(version: str) -> str:
    """The feature tool's release name of a version: 4.4.0 -> 4.4."""
    return ".".join(version.split(".")[:2])


def recorded_version(home: Path) -> str:
    """The version that formatted ``home`` (its version file, else the one before recording)."""
    path = home / VERSION_FILE
    return path.read_text().strip() if path.exists() else LEGACY_VERSION


def refuse_downgrade(home: Path, version: str) -> None:
    """Raise when ``home`` was formatted by a newer release than ``version``."""
    formatted_by = recorded_version(home)
    if _key(release(formatted_by)) > _key(release(version)):
        raise ServiceError(
            f"kafka state in {home} was formatted by Kafka {formatted_by}; Kafka {version} "
            "cannot read it (metadata versions never go down): start it with "
            f"ONCEPIPE_INFRA_KAFKA_VERSION={formatted_by} (make up KAFKA_VERSION=...), give "
            f"{version} a state folder of its own (ONCEPIPE_INFRA_STATE_DIR), or delete this one "
            "with `python -m infra clean kafka` (its topics are lost)"
        )


def needs_upgrade(home: Path, version: str) -> bool:
    """True when ``home`` was formatted by an older release than ``version``."""
    return _key(release(recorded_version(home))) < _key(release(version))


def feature_levels(mapping: str) -> list[str]:
    """``feature=level`` pairs of the tool's ``version-mapping`` output, kraft.version left out."""
    levels = []
    for line in mapping.splitlines():
        found = re.match(r"^([a-z.]+)=(\d+)", line.strip())
        if found and found.group(1) not in _KEPT_FEATURES:
            levels.append(f"{found.group(1)}={found.group(2)}")
    if not any(level.startswith("metadata.version=") for level in levels):
        raise ServiceError(f"kafka features tool gave no metadata.version:\n{mapping[-2000:]}")
    return levels


def upgrade_features(
    java: Callable[..., list[str]], controller: str, home: Path, version: str
) -> None:
    """Raise the running cluster's features to ``version``'s defaults, then record it.

    ``java`` builds a command line on the broker's classpath; ``controller`` is host:port of a
    controller listener.
    """
    mapping = _run(java(FEATURE_TOOL, "version-mapping", "--release-version", release(version)))
    arguments = ["upgrade"]
    for level in feature_levels(mapping):
        arguments += ["--feature", level]
    _run(java(FEATURE_TOOL, "--bootstrap-controller", controller, *arguments))
    (home / VERSION_FILE).write_text(version + "\n")


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(
            f"kafka features tool failed ({' '.join(command[-6:])}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result.stdout
