"""The plot of consumer throughput against batch size, from ``bench/results/consume.json``.

matplotlib comes with the bench extra; without it no plot is drawn and the report says so.

Public names: ``plot_consume``.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import RESULTS_DIR

__all__ = ["plot_consume"]


def plot_consume(directory: Path = RESULTS_DIR) -> Path | None:
    """Draw ``consume.png`` (click events); return its path, or None without data/matplotlib."""
    source = directory / "consume.json"
    if not source.exists():
        return None
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional, the bench extra

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    data = json.loads(source.read_text())
    lines: dict[str, list[tuple[int, float, float, float]]] = {}
    for case in data["cases"]:
        if case["params"].get("kind") != "click":
            continue
        for variant in case["variants"]:
            rate = variant["summary"]["events_per_s"]
            point = (case["params"]["batch"], rate["median"], rate["min"], rate["max"])
            lines.setdefault(variant["name"], []).append(point)
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, points in lines.items():
        points.sort()
        xs = [p[0] for p in points]
        medians = [p[1] for p in points]
        errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        style = "o" if len(points) == 1 else "o-"
        axes.errorbar(xs, medians, yerr=errors, fmt=style, capsize=3, label=name)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("batch size (records per consume / transaction)")
    axes.set_ylabel("events/s (median, bars: min-max)")
    mode = "quick" if data.get("quick") else "full"
    axes.set_title(f"Click events consumed into PostgreSQL ({mode} run, 2 cores)")
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path = directory / "consume.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
