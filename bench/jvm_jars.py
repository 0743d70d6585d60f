"""The JVM peer's jars: the converter, the Debezium JDBC sink plugin and the Connect worker.

- **converter**: ``bench/jvm/avro-single-object`` built by Maven (offline first, online when
  something is missing) into ``target/plugin`` (git-ignored): its jar and its runtime
  dependencies (Apache Avro, Jackson), a Connect plugin folder of its own. Rebuilt when a source
  file or the pom is newer than the last build.
- **Debezium JDBC sink**: ``bench/jvm/connect/jdbc-sink/pom.xml`` (``debezium-connector-jdbc``
  3.3.1.Final and its runtime dependencies, Hibernate and the PostgreSQL driver among them) into
  the machine's cache folder, keyed by the pom's content, like the broker's jars.
- **Connect worker**: the broker's own jar set (``infra/kafka/pom.xml`` lists
  ``connect-runtime`` and ``connect-transforms``), so one Kafka version serves both.

``python -m bench.jvm_jars`` (``make jvm-peer``) resolves all three and prints the folders;
``ensure_jvm_peer`` does the same for the peer suite and returns why it could not instead of
raising.

Public names: ``CONVERTER_MODULE``, ``JvmPeer``, ``JarsError``, ``build_converter``,
``debezium_plugin``, ``ensure_jvm_peer``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.kafka.jars import install_jars
from infra.paths import layout
from infra.process import ServiceError

__all__ = [
    "CONVERTER_MODULE",
    "JarsError",
    "JvmPeer",
    "build_converter",
    "debezium_plugin",
    "ensure_jvm_peer",
]

JVM_DIR = Path(__file__).resolve().parent / "jvm"
CONVERTER_MODULE = JVM_DIR / "avro-single-object"
DEBEZIUM_POM = JVM_DIR / "connect" / "jdbc-sink" / "pom.xml"
_TAIL = 2000


class JarsError(RuntimeError):
    """A JVM peer's jars could not be built or fetched; the message says what to do."""


@dataclass(frozen=True)
class JvmPeer:
    """The folders the Connect worker runs from, or why there are none."""

    worker: Path | None = None
    """The worker's classpath folder (``'<folder>/*'``)."""
    debezium: Path | None = None
    """The Debezium JDBC sink's plugin folder."""
    converter: Path | None = None
    """The converter's plugin folder."""
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when every folder is there."""
        return not self.error


def _tools() -> None:
    if shutil.which("mvn") is None:
        raise JarsError("mvn not found: install Maven (Debian: apt-get install maven)")
    if shutil.which("java") is None:
        raise JarsError("java not found: install Java 17+ (Debian: openjdk-17-jre-headless)")


def _mvn(pom: Path, *goals: str) -> None:
    """Run Maven offline first (fast once resolved), then online if something was missing."""
    base = ["mvn", "-B", "-q", "-f", str(pom), *goals]
    offline = subprocess.run(
        [*base[:3], "-o", *base[3:]], capture_output=True, text=True, check=False
    )
    if offline.returncode == 0:
        return
    online = subprocess.run(base, capture_output=True, text=True, check=False)
    if online.returncode != 0:
        raise JarsError(
            f"`mvn -f {pom} {' '.join(goals[:2])} ...` failed; check network access to Maven "
            f"Central and ~/.m2/settings.xml:\n{(online.stdout + online.stderr)[-_TAIL:]}"
        )


def build_converter(module: Path = CONVERTER_MODULE) -> Path:
    """The converter's plugin folder (its jar + runtime dependencies), built when stale."""
    target = module / "target"
    plugin = target / "plugin"
    stamp = plugin / ".built"
    sources = [
        module / "pom.xml",
        *(p for p in (module / "src" / "main").rglob("*") if p.is_file()),
    ]
    newest = max(path.stat().st_mtime for path in sources)
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        return plugin
    _tools()
    shutil.rmtree(plugin, ignore_errors=True)
    _mvn(
        module / "pom.xml",
        "package", "-DskipTests", "dependency:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={plugin}",
    )  # fmt: skip
    jars = [jar for jar in target.glob("*.jar") if not jar.name.endswith("-sources.jar")]
    if len(jars) != 1:
        raise JarsError(f"expected one jar in {target} after `mvn package`, found {jars}")
    shutil.copy2(jars[0], plugin / jars[0].name)
    stamp.touch()
    return plugin


def debezium_plugin(cache_dir: Path, pom: Path = DEBEZIUM_POM) -> Path:
    """The Debezium JDBC sink's plugin folder in ``cache_dir``, fetched unless cached."""
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    target = cache_dir / "connect-plugins" / f"debezium-jdbc-{digest}"
    if (target / ".complete").exists():
        return target
    _tools()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _mvn(
        pom,
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    )
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def ensure_jvm_peer() -> JvmPeer:
    """Every folder the Debezium peer needs, built or fetched first; the error, never a raise."""
    where = layout()
    try:
        worker = install_jars(where.cache_dir, where.kafka_version)
        return JvmPeer(worker, debezium_plugin(where.cache_dir), build_converter())
    except (JarsError, ServiceError, OSError) as exc:
        return JvmPeer(error=" ".join(str(exc).split())[-_TAIL:])


def main() -> int:
    """Resolve the peer's jars; print the folders, or what failed (exit 1)."""
    peer = ensure_jvm_peer()
    if not peer.ok:
        print(f"bench.jvm_jars: {peer.error}", file=sys.stderr)
        return 1
    print(f"connect worker classpath: {peer.worker}/*")
    print(f"debezium jdbc sink plugin: {peer.debezium}")
    print(f"avro single-object converter plugin: {peer.converter}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
