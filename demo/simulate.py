"""``python -m demo simulate``: an upstream service submitting click signals."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import typer

from cli import build_settings, check_topic_names, emit_json, state
from demo.simulator import SimulationPlan, Simulator
from producers import ProducerSettings
from schemas import Codec

__all__ = ["simulate"]


def simulate(
    ctx: typer.Context,
    mode: str = typer.Option(
        "outbox",
        help="outbox: through the transactional outbox; direct: straight to Kafka; http: POST to"
        " oncepipe ingest",
    ),
    topic: str = typer.Option("events.click", help="destination topic"),
    count: int = typer.Option(1000, min=0, help="distinct events to submit"),
    keys: int = typer.Option(100, min=1, help="distinct users (the Kafka key)"),
    items: int = typer.Option(50, min=1, help="distinct items"),
    duplicate_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="share of events submitted twice (retries)"
    ),
    poison_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="share of submissions that are poison"
    ),
    new_item_rate: float = typer.Option(
        0.0, min=0.0, max=1.0, help="share of clicks on items launched during the run (new-item-N)"
    ),
    rate: float = typer.Option(0.0, min=0.0, help="events per second; 0 = as fast as possible"),
    seed: int = typer.Option(0, help="random seed: the same seed submits the same events"),
    manifest: Path | None = typer.Option(
        None,
        help="append every submission as a JSON line to this file (a restarted simulator adds"
        " its lines, never truncating an earlier run's)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    url: str = typer.Option("", help="http mode: the ingest server, e.g. http://127.0.0.1:8080"),
    api_key_file: Path | None = typer.Option(
        None, help="http mode: file holding the API key (keys never travel in argv)"
    ),
    drop_rate: float = typer.Option(
        0.0, min=0.0, max=0.9, help="http mode: share of answers a proxy loses after the server"
    ),
    naive: bool = typer.Option(
        False, help="http mode: no Idempotency-Key, to the server's /naive endpoint"
    ),
    concurrency: int = typer.Option(8, min=1, max=256, help="http mode: requests at once"),
) -> None:
    """Submit simulated click signals, with upstream retries and poison if asked."""
    if mode not in {"outbox", "direct", "http"}:
        raise typer.BadParameter("choose outbox, direct or http", param_hint="--mode")
    if mode == "http" and (not url or api_key_file is None):
        raise typer.BadParameter("http mode needs --url and --api-key-file", param_hint="--mode")
    check_topic_names([topic])
    api_key = api_key_file.read_text().strip() if api_key_file is not None else ""
    plan = SimulationPlan(
        mode="outbox" if mode == "outbox" else "direct" if mode == "direct" else "http",
        url=url,
        api_key=api_key,
        drop_rate=drop_rate,
        naive=naive,
        concurrency=concurrency,
        topic=topic,
        count=count,
        keys=keys,
        items=items,
        duplicate_rate=duplicate_rate,
        poison_rate=poison_rate,
        new_item_rate=new_item_rate,
        rate=rate,
        seed=seed,
    )
    simulator = Simulator(state(ctx).settings, Codec.load(), plan, build_settings(ProducerSettings))
    if manifest is not None:
        # Append: a simulator restarted after an exit replays from its first submission, and
        # the events its earlier life submitted must stay in the manifest the checks read.
        # Line-buffered: a simulator killed (SIGKILL) keeps every line it wrote.
        with manifest.open("a", buffering=1) as sink:
            report = simulator.run(sink)
    else:
        report = simulator.run()
    if as_json:
        emit_json(asdict(report))
        return
    for key, value in asdict(report).items():
        print(f"{key}\t{value}")
    print(f"submitted {report.distinct_events} events in {report.seconds}s", file=sys.stderr)
