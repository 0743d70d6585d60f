"""The broker's jars, fetched from Maven Central once per machine into a shared cache.

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


def jars_dir(cache_dir: Path) -> Path:
    """Cache folder of this pom's jars, outside the clone, keyed by the pom's content."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    return cache_dir / "kafka-jars" / digest


def install_jars(cache_dir: Path) -> Path:
    """Fetch the broker's jars from Maven Central unless the cache has them; return the folder."""
    target = jars_dir(cache_dir)
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
        "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServiceError(
            "fetching Kafka jars from Maven Central failed; check network access to "
            f"repo.maven.apache.org and ~/.m2/settings.xml:\n{result.stdout[-2000:]}"
        )
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
