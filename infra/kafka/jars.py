"""The broker's jars, fetched from Maven Central once per machine (and version) into a shared cache.

Public names: ``jars_dir``, ``install_jars``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from infra.process import ServiceError

__all__ = ["POM", "install_jars", "jars_dir"]

POM = Path(__file__).resolve().parent / "pom.xml"


def jars_dir(cache_dir: Path, version: str) -> Path:
    """Cache folder of this pom's jars for Kafka ``version``, outside the clone.

    Keyed by the pom's content and the version: a changed pom or another version never
    reuses a folder fetched for something else.
    """
    digest = hashlib.sha256(POM.read_bytes() + version.encode()).hexdigest()[:12]
    return cache_dir / "kafka-jars" / f"{version}-{digest}"


def install_jars(cache_dir: Path, version: str) -> Path:
    """Fetch Kafka ``version``'s jars from Maven Central unless cached; return the folder."""
    target = jars_dir(cache_dir, version)
    if (target / ".complete").exists():
        return target
    if shutil.which("mvn") is None:
        raise ServiceError("mvn not found: install Maven (Debian: apt-get install maven)")
    if shutil.which("java") is None:
        raise ServiceError("java not found: install Java 17+ (Debian: openjdk-17-jre-headless)")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [
        "mvn", "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={partial}", f"-Dkafka.version={version}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(
            f"fetching Kafka {version}'s jars from Maven Central failed; check the version "
            "(ONCEPIPE_INFRA_KAFKA_VERSION), network access to "
            f"repo.maven.apache.org and ~/.m2/settings.xml:\n{result.stdout[-2000:]}"
        )
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
