"""The Flink peer's jars: ``bench/jvm/flink-clicks`` and the shared decoder it depends on.

``build_flink_job`` installs the decoder module (``bench/jvm/avro-single-object``) into the local
Maven repository, then packages the job and copies its runtime classpath into
``bench/jvm/flink-clicks/target/lib`` (git-ignored); Maven runs offline first and online only
when something is missing (a fresh machine downloads Flink 2.0, its Kafka and JDBC connectors
and the PostgreSQL driver once). Rebuilt when a source file or a pom is newer than the last build.

``python -m bench.flink_jars`` (``make jvm-flink``) builds it and prints the classpath.

Public names: ``FLINK_MODULE``, ``build_flink_job``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.jvm_jars import CONVERTER_MODULE, JVM_DIR, JarsError, _mvn, _tools

__all__ = ["FLINK_MODULE", "build_flink_job"]

FLINK_MODULE = JVM_DIR / "flink-clicks"


def _newest(*modules: Path) -> float:
    files = [m / "pom.xml" for m in modules]
    files += [p for m in modules for p in (m / "src" / "main").rglob("*") if p.is_file()]
    return max(path.stat().st_mtime for path in files)


def build_flink_job(module: Path = FLINK_MODULE) -> str:
    """The job's Java classpath (``'<jar>:<lib>/*'``), built when stale; raises JarsError."""
    target = module / "target"
    lib = target / "lib"
    stamp = target / ".built"
    jar = target / "oncepipe-flink-clicks-1.0.0.jar"
    classpath = f"{jar}:{lib}/*"
    if stamp.exists() and stamp.stat().st_mtime >= _newest(module, CONVERTER_MODULE):
        return classpath
    _tools()
    _mvn(CONVERTER_MODULE / "pom.xml", "install", "-DskipTests")
    _mvn(
        module / "pom.xml",
        "package", "-DskipTests", "dependency:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={lib}",
    )  # fmt: skip
    if not jar.exists():
        raise JarsError(f"expected {jar} after `mvn package`; see the Maven output above")
    stamp.touch()
    return classpath


def main() -> int:
    """Build the job; print its classpath, or what failed (exit 1)."""
    try:
        print(f"flink job classpath: {build_flink_job()}")
    except JarsError as exc:
        print(f"bench.flink_jars: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
