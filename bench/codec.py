"""The codec's per-core encode and decode rates (``python -m bench.codec_rates``), in the same run.

Public names: ``run_codec``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.results import RESULTS_DIR

__all__ = ["run_codec"]

ROOT = Path(__file__).resolve().parent.parent


def run_codec(*, quick: bool, runs: int) -> Path:
    """Run ``python -m bench.codec_rates``, write ``bench/results/codec.json``, return its path."""
    events = 20_000 if quick else 100_000
    out = subprocess.run(
        # As a module: run as a script, bench/ would come first on sys.path and its queue.py
        # and profile.py would shadow the standard library's modules of those names.
        [
            sys.executable,
            "-m",
            "bench.codec_rates",
            "--json",
            "--events",
            str(events),
            "--repeats",
            str(runs),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    data: dict[str, Any] = json.loads(out.stdout)
    data.update({"suite": "codec", "quick": quick, "events": events, "repeats": runs})
    path = RESULTS_DIR / "codec.json"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
