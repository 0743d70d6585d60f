"""The markdown tables of ``bench/README.md``, regenerated from ``bench/results/*.json``.

Only the part between the two ``bench:results`` markers is rewritten; the prose around it
(what each baseline is, what the profile shows) is kept.

Public names: ``write_report``, ``render``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.plot import plot_consume, plot_drain, plot_throughput
from bench.results import RESULTS_DIR

__all__ = ["render", "write_report"]

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
ORDER = ("machine", "codec", "produce", "outbox", "latency", "consume", "dlq", "peer")


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _spread(stat: dict[str, float]) -> str:
    return f"{_num(stat['median'])} ({_num(stat['min'])}-{_num(stat['max'])})"


def _opt(summary: dict[str, Any], key: str) -> str:
    return _num(summary[key]["median"]) if key in summary else "-"


RSS_KEYS = ("client_peak_rss_mb", "postgres_peak_rss_mb", "kafka_peak_rss_mb")


def _case_table(case: dict[str, Any]) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in case["params"].items())
    # Peak memory columns only where the results have them (older runs did not measure it).
    rss = any(key in v["summary"] for v in case["variants"] for key in RSS_KEYS)
    lines = [
        f"**{case['case']}** ({params}; baseline: {case['baseline']})",
        "",
        "| variant | events/s median (min-max) | MB/s | wall µs/ev | CPU µs/ev client "
        "| PG | broker "
        + ("| peak RSS MB client | PG max | broker " if rss else "")
        + "| x baseline events/s | x baseline client CPU/ev |",
        "|---|--:|--:|--:|--:|--:|--:|" + ("--:|--:|--:|" if rss else "") + "--:|--:|",
    ]
    for variant in case["variants"]:
        s, r = variant["summary"], variant["ratio_to_baseline"]
        memory = "".join(f"| {_opt(s, key)} " for key in RSS_KEYS) if rss else ""
        lines.append(
            f"| {variant['name']} | {_spread(s['events_per_s'])} | {_opt(s, 'mb_per_s')} "
            f"| {_opt(s, 'wall_us_per_event')} | {_opt(s, 'cpu_us_per_event')} "
            f"| {_opt(s, 'postgres_cpu_us_per_event')} | {_opt(s, 'kafka_cpu_us_per_event')} "
            f"{memory}| {r['events_per_s']:.2f} | {r['cpu_us_per_event']:.2f} |"
        )
    extras = [
        f"{variant['name']}: " + ", ".join(
            f"{key} {_spread(variant['summary'][key])}" for key in variant["samples"][0]["extra"]
        )
        for variant in case["variants"]
        if variant["samples"][0]["extra"]
    ]  # fmt: skip
    if extras:
        lines += ["", *(f"- {line}" for line in extras)]
    return [*lines, ""]


def _latency_table(case: dict[str, Any]) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in case["params"].items())
    lines = [
        f"**{case['case']}** ({params}; milliseconds, median of runs (min-max))",
        "",
        "| relay wake-up | p50 ms | p95 ms | p99 ms | max ms | events/run |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for mode in case["modes"]:
        s = mode["summary"]
        cells = " | ".join(_spread(s[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        lines.append(f"| {mode['name']} | {cells} | {mode['runs'][0]['events']} |")
    return [*lines, ""]


def _codec_table(data: dict[str, Any]) -> list[str]:
    lines = [
        f"Click event of {data['event_bytes']} bytes, batches of {data['batch']}, "
        f"best of {data['repeats']}, one core:",
        "",
        "| API | events/s | events per CPU-second |",
        "|---|--:|--:|",
    ]
    for name, rates in data["results"].items():
        lines.append(
            f"| {name} | {rates['events_per_s']:,.0f} | {rates['events_per_cpu_s']:,.0f} |"
        )
    return [*lines, ""]


def _machine_table(data: dict[str, Any]) -> list[str]:
    lines = [
        f"CPU: {data['cpu_model']}, {data['cpus']} logical cores. Disk: `pg_test_fsync "
        f"-s {data['seconds_per_test']}` ({data['pg_test_fsync']}) on the filesystem of "
        f"the services' state folder ({data['filesystem']}). PostgreSQL commits with "
        f"`wal_sync_method` = {data['wal_sync_method']}.",
        "",
    ]
    if not data.get("one_8k_write"):
        return [*lines, f"pg_test_fsync did not run: {data.get('error', 'no figures')}", ""]
    lines += [
        "| one 8 kB write, then | ops/s | µs/op |",
        "|---|--:|--:|",
    ]
    for method, figures in data["one_8k_write"].items():
        lines.append(f"| {method} | {figures['ops_per_s']:,.0f} | {figures['us_per_op']:,.0f} |")
    return [*lines, ""]


def render(directory: Path = RESULTS_DIR) -> str:
    """The generated markdown for every results file in ``directory``."""
    files = {path.stem: path for path in directory.glob("*.json")}
    out: list[str] = []
    for suite in sorted(files, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER)):
        data = json.loads(files[suite].read_text())
        mode = "quick" if data.get("quick") else "full"
        when = data.get("started_at", "")
        out += [f"### {suite} ({mode} run{', ' + when if when else ''})", ""]
        out += [f"> {note}" for note in data.get("notes", [])]
        if data.get("notes"):
            out.append("")
        if suite == "codec":
            out += _codec_table(data)
            continue
        if suite == "machine":
            out += _machine_table(data)
            continue
        if suite == "consume" and (directory / "consume.png").exists():
            out += ["![consumer throughput against batch size](results/consume.png)", ""]
        if suite == "relays" and (directory / "relays-drain.png").exists():
            out += ["![the backlog drained by 1, 2 and 4 relays](results/relays-drain.png)", ""]
        if suite == "peer" and (directory / "throughput.png").exists():
            out += [
                "![consumers and peers: throughput against batch size](results/throughput.png)",
                "",
            ]
        for case in data.get("cases", []):
            out += _latency_table(case) if case.get("kind") == "latency" else _case_table(case)
    return "\n".join(out).rstrip() + "\n"


def write_report(readme: Path = README, directory: Path = RESULTS_DIR) -> Path:
    """Rewrite the generated section of ``readme`` (and the plot); return its path."""
    plot_consume(directory)
    plot_throughput(directory)
    plot_drain(directory)
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n{render(directory)}{END}{tail}")
    return readme
