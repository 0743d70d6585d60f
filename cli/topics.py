"""``oncepipe topics``: create the event topics and their dead-letter topics."""

from __future__ import annotations

import sys

import typer

from cli.options import build_settings
from cli.preflight import check_broker, check_topic_names
from cli.shared import emit_json, state
from oncepipe.kafka import create_admin
from producers import ProducerSettings, TopicSettings, create_event_topics, topic_plan

__all__ = ["topics_app"]

topics_app = typer.Typer(
    help="Manage the event topics and their .dlq topics.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@topics_app.command("create")
def create(
    ctx: typer.Context,
    topic: list[str] = typer.Option(
        ["events.click"], "--topic", "-t", help="event topic; its .dlq is created too"
    ),
    partitions: int | None = typer.Option(
        None, help="partitions per event topic [env ONCEPIPE_TOPICS_PARTITIONS, default 6]"
    ),
    replication_factor: int | None = typer.Option(
        None, help="copies of each partition [env ONCEPIPE_TOPICS_REPLICATION_FACTOR, default 1]"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan, create nothing"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Create topics (existing ones are left as they are)."""
    check_topic_names(topic)
    topic_settings = build_settings(
        TopicSettings, partitions=partitions, replication_factor=replication_factor
    )
    producer_settings = build_settings(ProducerSettings)
    plan = topic_plan(list(topic), topic_settings, producer_settings)
    created: list[str] = []
    if not dry_run:
        check_broker(state(ctx).settings)
        admin = create_admin(state(ctx).settings)
        created = create_event_topics(admin, list(topic), topic_settings, producer_settings)
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "created": created,
                "topics": [spec.__dict__ for spec in plan],
            }
        )
        return
    for spec in plan:
        status = "planned" if dry_run else ("created" if spec.name in created else "exists")
        print(f"{spec.name}\tpartitions={spec.partitions}\t{status}")
    print(f"{len(created)} topic(s) created", file=sys.stderr)
