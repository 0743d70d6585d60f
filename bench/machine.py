"""The machine under the figures: CPU model and cores, and what an fsync costs on its disk.

Every commit of PostgreSQL (and every ``acks=all`` write of a broker that flushes) waits for
the disk, so the cost of one fsync bounds one-transaction-per-event figures on any machine.
``pg_test_fsync`` (from the PostgreSQL server binaries ``python -m infra`` runs) writes its
test file in the services' state folder, so the disk measured is the one the services use.
Results go to ``bench/results/machine.json``; the report shows them above every suite.

Public names: ``run_machine``, ``parse_pg_test_fsync``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.env import BenchEnv
from bench.results import RESULTS_DIR
from infra.paths import layout
from infra.postgres.server import Postgres

__all__ = ["parse_pg_test_fsync", "run_machine"]

_FIGURES = re.compile(r"^\s*(\S.*?)\s+([\d.]+) ops/sec\s+(\d+) usecs/op\s*$")


def parse_pg_test_fsync(output: str) -> dict[str, dict[str, dict[str, float]]]:
    """Figures by section ("Compare file sync methods using one 8kB write", ...) and test.

    A test reported ``n/a`` (not supported here) is left out.
    """
    sections: dict[str, dict[str, dict[str, float]]] = {}
    current: dict[str, dict[str, float]] | None = None
    for line in output.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = sections.setdefault(line.rstrip().rstrip(":"), {})
            continue
        match = _FIGURES.match(line)
        if match and current is not None:
            current[match.group(1)] = {
                "ops_per_s": float(match.group(2)),
                "us_per_op": float(match.group(3)),
            }
    return sections


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> str:
    """``device (type)`` of the mount holding ``path``, from ``/proc/mounts``."""
    best = ("", "unknown", "unknown")
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best[0]):
                best = (mount, device, fstype)
    return f"{best[1]} ({best[2]}, mounted on {best[0] or '?'})"


def run_machine(env: BenchEnv, *, quick: bool) -> Path:
    """Measure, write ``bench/results/machine.json`` and return its path."""
    started = time.time()
    state_dir = layout().state_dir
    seconds = 1 if quick else 2
    with env.connect(autocommit=True) as conn:
        row = conn.execute("SHOW wal_sync_method").fetchone()
    data: dict[str, Any] = {
        "suite": "machine",
        "quick": quick,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count() or 0,
        "platform": platform.platform(),
        "seconds_per_test": seconds,
        "filesystem": _filesystem(state_dir),
        "wal_sync_method": row[0] if row else "unknown",
    }
    binary = Postgres(layout()).install() / "pg_test_fsync"
    data["pg_test_fsync"] = str(binary)
    test_file = state_dir / "pg_test_fsync.tmp"
    try:
        result = subprocess.run(
            [str(binary), "-s", str(seconds), "-f", str(test_file)],
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
    finally:
        test_file.unlink(missing_ok=True)
    sections = parse_pg_test_fsync(result.stdout)
    one_write = next((v for k, v in sections.items() if "one 8kB write" in k), {})
    if result.returncode != 0 or not one_write:
        data["error"] = f"exit {result.returncode}: {' '.join(result.stderr.split())[-500:]}"
    data["one_8k_write"] = one_write
    data["sections"] = sections
    data["seconds"] = round(time.time() - started, 1)
    path = RESULTS_DIR / "machine.json"
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
