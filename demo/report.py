"""The demo's final report: truth vs the naive consumer vs oncepipe, as text, JSON and PNG.

Public names: ``DemoFigures``, ``write_report``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["DemoFigures", "write_report"]


@dataclass
class DemoFigures:
    """Everything the report says, measured by the demo run."""

    distinct_events: int
    topic_records: int
    truth: dict[str, int]
    naive: dict[str, int]
    oncepipe: dict[str, int]
    naive_deliveries: int = 0
    naive_dropped: int = 0
    """Deliveries the naive consumer could not read (poison) and dropped without a trace."""
    poison_submitted: dict[str, int] = field(default_factory=dict)
    """Poison submissions by kind (``bad_magic``, ``truncated``, ``invalid_field``)."""
    new_item_events: int = 0
    """Distinct events on items launched during the run: the catalog refuses them until fixed."""
    oncepipe_total_before_replay: int = 0
    dead_letters_before_replay: int = 0
    dead_letters_by_stage: dict[str, int] = field(default_factory=dict)
    catalog_items_added: list[str] = field(default_factory=list)
    dead_letters_replayed: int = 0
    dead_letters_applied_after_replay: int = 0
    """Clicks the replay added to oncepipe's counters (a replayed re-send is absorbed)."""
    dead_letters_after_replay: int = 0
    """Dead letters still unresolved: not replayed, plus any the replay produced."""
    dead_letters_from_replay: int = 0
    """New dead letters written after the replay (a replayed event refused again)."""
    dlq_list_command: str = ""
    dlq_list: list[dict[str, str]] = field(default_factory=list)
    dlq_replay_command: str = ""
    wall_seconds: float = 0.0
    kills: list[str] = field(default_factory=list)

    @property
    def truth_total(self) -> int:
        """Clicks that really happened (distinct events)."""
        return sum(self.truth.values())

    @property
    def naive_inflation_pct(self) -> float:
        """How much the naive counters overstate the truth, in percent."""
        if not self.truth_total:
            return 0.0
        return 100.0 * (sum(self.naive.values()) - self.truth_total) / self.truth_total

    @property
    def naive_items_overcounted(self) -> int:
        """Items whose naive count is above the truth."""
        return sum(1 for item, n in self.naive.items() if n > self.truth.get(item, 0))

    @property
    def oncepipe_exact(self) -> bool:
        """True when every oncepipe counter equals the truth."""
        items = self.truth.keys() | self.oncepipe.keys()
        return all(self.truth.get(i, 0) == self.oncepipe.get(i, 0) for i in items)


def _stages(by_stage: dict[str, int]) -> str:
    return ", ".join(f"{n} {stage}" for stage, n in by_stage.items()) or "none"


def _dlq_table(figures: DemoFigures) -> str:
    if not figures.dlq_list:
        return "(no dead letters)"
    header = list(figures.dlq_list[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(row[name].replace("|", "\\|") for name in header) + " |"
        for row in figures.dlq_list
    ]
    return "\n".join(lines)


def _markdown(figures: DemoFigures) -> str:
    top = sorted(figures.truth, key=lambda item: -figures.truth[item])[:10]
    rows = "\n".join(
        f"| {item} | {figures.truth[item]} | {figures.naive.get(item, 0)} "
        f"| {figures.oncepipe.get(item, 0)} |"
        for item in top
    )
    verdict = "exact" if figures.oncepipe_exact else "NOT exact"
    poison = ", ".join(f"{n} {kind}" for kind, n in sorted(figures.poison_submitted.items()))
    held = figures.truth_total - figures.oncepipe_total_before_replay
    copies = figures.dead_letters_replayed - figures.dead_letters_applied_after_replay
    return f"""# oncepipe demo: duplicated click signals, naive vs oncepipe

| measure | value |
|---|---|
| distinct events submitted | {figures.distinct_events} \
({figures.new_item_events} on items launched during the run) |
| poison submitted | {sum(figures.poison_submitted.values())} ({poison or "none"}) |
| records on the topic | {figures.topic_records} |
| naive deliveries applied | {figures.naive_deliveries - figures.naive_dropped} \
(of {figures.naive_deliveries} read; {figures.naive_dropped} unreadable dropped silently) |
| naive counters vs truth | {sum(figures.naive.values())} vs {figures.truth_total} \
({figures.naive_inflation_pct:+.1f}%), {figures.naive_items_overcounted} items over-counted |
| oncepipe counters before the fix | {figures.oncepipe_total_before_replay} vs \
{figures.truth_total} ({held} clicks held as dead letters) |
| oncepipe counters vs truth | {sum(figures.oncepipe.values())} vs {figures.truth_total} \
({verdict}) |
| dead letters before replay | {figures.dead_letters_before_replay} \
({_stages(figures.dead_letters_by_stage)}) |
| dead letters replayed after the fix | {figures.dead_letters_replayed}: \
{figures.dead_letters_applied_after_replay} clicks applied, {copies} re-sent \
{"copy" if copies == 1 else "copies"} absorbed by the inbox |
| dead letters after replay | {figures.dead_letters_after_replay} \
({figures.dead_letters_from_replay} new from the replay) |
| faults injected | {", ".join(figures.kills) or "none"} |
| wall time | {figures.wall_seconds:.1f} s |

## Top items: clicks per item

| item | truth | naive | oncepipe |
|---|---|---|---|
{rows}

## Dead letters

`{figures.dlq_list_command}` after the upstreams finished:

{_dlq_table(figures)}

The fix: the catalog learned {", ".join(figures.catalog_items_added) or "nothing"}. Then \
`{figures.dlq_replay_command}` re-published {figures.dead_letters_replayed} dead letter(s) \
refused for that reason. Corrupt bodies (`decode`) and invalid fields (`validate`) stay \
dead-lettered: no fix downstream turns them into a click.
"""


def _chart(figures: DemoFigures, path: Path) -> bool:
    try:
        import matplotlib as mpl  # noqa: PLC0415 - optional: installed by `make demo`

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False
    top = sorted(figures.truth, key=lambda item: -figures.truth[item])[:12]
    xs = range(len(top))
    width = 0.28
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.bar([x - width for x in xs], [figures.truth[i] for i in top], width, label="truth")
    ax.bar(list(xs), [figures.naive.get(i, 0) for i in top], width, label="naive consumer")
    ax.bar([x + width for x in xs], [figures.oncepipe.get(i, 0) for i in top], width,
           label="oncepipe")  # fmt: skip
    ax.set_xticks(list(xs), top, rotation=30, ha="right")
    ax.set_ylabel("clicks counted")
    ax.set_title(
        f"Naive consumer inflates counts by {figures.naive_inflation_pct:.1f}%; "
        f"oncepipe is {'exact' if figures.oncepipe_exact else 'NOT exact'}"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(figures: DemoFigures, folder: Path) -> list[Path]:
    """Write report.md, report.json and chart.png into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / "report.md"
    markdown.write_text(_markdown(figures))
    data = folder / "report.json"
    summary = {
        **asdict(figures),
        "naive_inflation_pct": round(figures.naive_inflation_pct, 2),
        "naive_items_overcounted": figures.naive_items_overcounted,
        "oncepipe_exact": figures.oncepipe_exact,
    }
    data.write_text(json.dumps(summary, indent=2, sort_keys=True))
    written = [markdown, data]
    chart = folder / "chart.png"
    if _chart(figures, chart):
        written.append(chart)
    return written
