"""Plots of throughput against batch size, from ``bench/results/*.json``.

- ``consume.png`` (``consume.json``): every consumer variant of the consume suite;
- ``throughput.png``: the exactly-once and at-least-once consumers of the consume suite (left)
  beside the peer suite's sinks on the same raw rows, Quix Streams, the Debezium JDBC sink and
  oncepipe (right). Two panels, because they are two runs on different data: compare within one;
- ``relays-drain.png`` (``relays.json``): the backlog's pending rows against time, per relay
  count, every run.

matplotlib comes with the bench extra; without it no plot is drawn and the report says so.

Public names: ``plot_consume``, ``plot_throughput``, ``plot_drain``, ``pyplot``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import RESULTS_DIR

__all__ = ["plot_consume", "plot_drain", "plot_throughput", "pyplot"]

Points = dict[str, list[tuple[int, float, float, float]]]


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the file-only Agg backend, or None without the bench extra."""
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional, the bench extra

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    return plt


def plot_consume(directory: Path = RESULTS_DIR) -> Path | None:
    """Draw ``consume.png`` (click events); return its path, or None without data/matplotlib."""
    source = directory / "consume.json"
    if not source.exists():
        return None
    plt = pyplot()
    if plt is None:
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


def _points(data: dict[str, Any], keep: Callable[[str], bool]) -> Points:
    """events/s (median, min, max) per variant and batch size, click events only."""
    lines: Points = {}
    for case in data["cases"]:
        params = case["params"]
        if params.get("kind", case["case"].split(",")[0]) != "click":
            continue
        for variant in case["variants"]:
            if not keep(variant["name"]):
                continue
            rate = variant["summary"]["events_per_s"]
            point = (params.get("batch", 500), rate["median"], rate["min"], rate["max"])
            lines.setdefault(variant["name"], []).append(point)
    return lines


def _draw(axes: Any, lines: Points, title: str) -> None:
    for name, points in lines.items():
        points.sort()
        medians = [p[1] for p in points]
        errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        style = "o" if len(points) == 1 else "o-"
        axes.errorbar([p[0] for p in points], medians, yerr=errors, fmt=style, capsize=3,
                      label=name)  # fmt: skip
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("batch size (records per transaction)")
    axes.set_title(title, fontsize="medium")
    axes.grid(visible=True, which="both", alpha=0.3)
    axes.legend(fontsize="x-small")


def plot_throughput(directory: Path = RESULTS_DIR) -> Path | None:
    """Draw ``throughput.png``; return its path, or None without peer data or matplotlib."""
    source = directory / "peer.json"
    if not source.exists():
        return None
    plt = pyplot()
    if plt is None:
        return None
    peer = json.loads(source.read_text())
    panels = []
    consume = directory / "consume.json"
    if consume.exists():
        data = json.loads(consume.read_text())
        lines = _points(data, lambda n: "at-least-once" in n or n.startswith("oncepipe consumer"))
        mode = "quick" if data.get("quick") else "full"
        panels.append((lines, f"consume suite ({mode} run): click handler, raw rows + counters"))
    # Quix's default checkpoints have no batch size: left out of the plot.
    lines = _points(peer, lambda n: "default checkpoints" not in n)
    mode = "quick" if peer.get("quick") else "full"
    panels.append((lines, f"peer suite ({mode} run): raw rows only, 20% duplicate records"))
    figure, axes = plt.subplots(
        1, len(panels), figsize=(7 * len(panels), 5), squeeze=False, sharey=True
    )
    for ax, (panel_lines, title) in zip(axes[0], panels, strict=True):
        _draw(ax, panel_lines, title)
    axes[0][0].set_ylabel("click events/s (median, bars: min-max)")
    figure.suptitle("Throughput against batch size into PostgreSQL (2 shared cores)")
    figure.tight_layout()
    path = directory / "throughput.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_drain(directory: Path = RESULTS_DIR) -> Path | None:
    """Draw ``relays-drain.png``; return its path, or None without relay data or matplotlib."""
    source = directory / "relays.json"
    if not source.exists():
        return None
    plt = pyplot()
    if plt is None:
        return None
    data = json.loads(source.read_text())
    curves = next((c["drain_curves"] for c in data["cases"] if c.get("drain_curves")), None)
    if not curves:
        return None
    figure, axes = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, (name, runs) in zip(colours, curves.items(), strict=False):
        for n, run in enumerate(runs):
            axes.plot([t for t, _ in run], [pending for _, pending in run], color=colour,
                      alpha=0.8, linewidth=1.2, label=name if n == 0 else None)  # fmt: skip
    axes.set_xlabel("seconds since the backlog's COMMIT")
    axes.set_ylabel("outbox rows not yet published")
    mode = "quick" if data.get("quick") else "full"
    axes.set_title(f"Draining one outbox backlog with 1, 2 and 4 relays ({mode} run, every run)")
    axes.grid(visible=True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path = directory / "relays-drain.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
