"""``flink.png`` from ``bench/results/flink.json``: what each side's guarantee costs.

Left: end-to-end latency percentiles at 1000 events/s, oncepipe's worker beside the Flink job at
each checkpoint interval (log scale: the intervals span 1 s to 30 s). Right: events/s, CPU
seconds per 1000 events (the side's process, PostgreSQL, the broker) and peak RSS of each side.
A quick run's plot says so in its title. matplotlib comes with the bench extra; without it no
plot is drawn.

Public names: ``plot_flink``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.plot import pyplot
from bench.results import RESULTS_DIR

__all__ = ["plot_flink"]

LABELS = {"oncepipe": "oncepipe (batch 500)", "flink": "Flink (checkpoint 1 s, XA)"}


def plot_flink(directory: Path = RESULTS_DIR) -> Path | None:
    """Draw ``flink.png``; return its path, or None without data or matplotlib."""
    source = directory / "flink.json"
    if not source.exists():
        return None
    plt = pyplot()
    if plt is None:
        return None
    data = json.loads(source.read_text())
    cases = [("oncepipe", label, v) for label, v in data["oncepipe"]["latency"].items()]
    cases += [("Flink", label, v) for label, v in data["flink"]["latency"].items()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [f"{side}\n{label}" for side, label, _ in cases]
    width = 0.27
    for n, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        left.bar(
            [i + (n - 1) * width for i in range(len(cases))],
            [v[key] for _, _, v in cases],
            width, label=key.removesuffix("_ms"),
        )  # fmt: skip
    left.set_xticks(range(len(cases)), names, fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("ms, produce to visible row")
    left.set_title("latency at 1000 events/s")
    left.legend()
    rows: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
        ("events/s / 1000", lambda t: t["events_per_s"] / 1000),
        ("CPU s/1k ev: side", lambda t: next(iter(t["cpu_s_per_1k_events"].values()))),
        ("CPU s/1k ev: PG", lambda t: t["cpu_s_per_1k_events"]["postgres"]),
        ("CPU s/1k ev: broker", lambda t: t["cpu_s_per_1k_events"]["kafka"]),
        ("peak RSS / 100 MB", lambda t: (t["peak_rss_mb"] or 0) / 100),
    ]
    for n, side in enumerate(("oncepipe", "flink")):
        through = data[side]["throughput"]
        right.barh(
            [i + (n - 0.5) * 0.4 for i in range(len(rows))],
            [get(through) for _, get in rows],
            0.4, label=LABELS[side],
        )  # fmt: skip
    right.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    right.set_title(f"same records ({data['distinct_events']:,} events + 20% duplicates)")
    right.legend()
    fig.suptitle("oncepipe beside Flink" + (" (quick run)" if data.get("quick") else ""))
    fig.tight_layout()
    out = directory / "flink.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
