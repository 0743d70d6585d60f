"""The demo's command line (``python -m demo``): the story, ``simulate``, ``naive-consumer``.

Public names: ``demo_app``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cli import EXIT_FAILURE, AppState, OncepipeGroup, state
from demo.ingest_chaos import ChaosPlan, run_ingest_chaos, table
from demo.naive import run_naive_consumer
from demo.processes import say
from demo.report import write_report
from demo.simulate import simulate
from demo.story import DemoPlan, run_story
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings

__all__ = ["demo_app"]

demo_app = typer.Typer(
    name="python -m demo",
    help="The duplicated-click-signals story, end to end: naive consumer vs oncepipe.",
    cls=OncepipeGroup,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@demo_app.callback()
def demo(
    ctx: typer.Context,
    events: int = typer.Option(4000, min=100, help="distinct click events to submit"),
    duplicate_rate: float = typer.Option(0.15, min=0.0, max=0.5, help="upstream re-send rate"),
    rate: float = typer.Option(400.0, min=10.0, help="events per second, both upstreams"),
    poison: float = typer.Option(
        3.0, min=0.0, help="poison records per upstream, on average (corrupt, invalid field)"
    ),
    new_item_clicks: float = typer.Option(
        3.0, min=0.0, help="clicks per upstream, on average, on items the catalog lacks"
    ),
    seed: int = typer.Option(7, help="random seed of the upstream simulators"),
    output: Path = typer.Option(Path("demo-output"), help="folder for the report and logs"),
    http_clicks: int | None = typer.Option(
        None,
        min=0,
        help="clicks of the HTTP upstream (oncepipe ingest behind a lossy proxy); default"
        " 3 per 40 events (300 of 4000)",
    ),
) -> None:
    """Run the story; exit 0 only if oncepipe's counters equal the truth exactly."""
    settings = load_settings()
    configure_logging(settings, client_logs=ctx.invoked_subcommand != "simulate")
    ctx.obj = AppState(settings=settings)
    if ctx.invoked_subcommand is not None:
        return
    plan = DemoPlan(
        events=events,
        duplicate_rate=duplicate_rate,
        rate=rate,
        poison=poison,
        new_item_clicks=new_item_clicks,
        seed=seed,
        http_clicks=round(events * 0.075) if http_clicks is None else http_clicks,
        output=output,
    )
    figures = run_story(state(ctx).settings, plan)
    for path in write_report(figures, output):
        say(f"wrote {path}")
    print((output / "report.md").read_text())
    if not figures.oncepipe_exact:
        say("oncepipe's counters differ from the truth: this is a bug, see the report")
        sys.exit(EXIT_FAILURE)


@demo_app.command("naive-consumer", hidden=True)
def naive_consumer(
    ctx: typer.Context,
    run: str = typer.Option(..., help="demo run id"),
    group: str = typer.Option(..., help="consumer group"),
    topic: str = typer.Option(..., help="topic"),
) -> None:
    """The naive consumer of the story (auto-commit, no inbox)."""
    run_naive_consumer(state(ctx).settings, run=run, group=group, topic=topic)


@demo_app.command("ingest-chaos")
def ingest_chaos(
    ctx: typer.Context,
    clicks: int = typer.Option(20_000, min=100, help="clicks per upstream"),
    drop_rate: float = typer.Option(0.1, min=0.0, max=0.9, help="share of answers lost"),
    concurrency: int = typer.Option(16, min=1, max=256, help="requests at once per upstream"),
    seed: int = typer.Option(24, help="random seed of the clicks and the losses"),
    output: Path = typer.Option(Path("demo-output/ingest-chaos"), help="report and logs"),
) -> None:
    """Keyed retries through oncepipe ingest vs a keyless endpoint, answers lost on the way."""
    plan = ChaosPlan(clicks, drop_rate, concurrency, seed, output)
    figures = run_ingest_chaos(state(ctx).settings, plan)
    report = table(figures, plan)
    (output / "report.md").write_text(report)
    print(report)
    keyed = figures[0]
    if keyed.counted != keyed.clicks or keyed.items_over:
        say("the keyed door's counters differ from the clicks meant: this is a bug")
        sys.exit(EXIT_FAILURE)


demo_app.command("simulate")(simulate)
