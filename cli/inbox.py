"""``oncepipe inbox maintain|partitions``: the inbox's daily partitions and their retention."""

from __future__ import annotations

import sys

import typer

from cli.shared import emit_json, state
from consumers import list_partitions, load_consumer_settings, maintain
from oncepipe.db import connect, require_session
from oncepipe.errors import OncepipeError

__all__ = ["app"]

app = typer.Typer(
    help="The consumers' inbox (dedupe records), partitioned by day.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("maintain")
def maintain_command(
    ctx: typer.Context,
    retention_days: int | None = typer.Option(
        None,
        "--retention-days",
        help="drop partitions older than this [env ONCEPIPE_CONSUMER_INBOX_RETENTION_DAYS, 14]",
    ),
    ahead_days: int = typer.Option(3, "--ahead-days", help="create this many days ahead"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would change, change nothing"),
    as_json: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
) -> None:
    """Create the coming days' partitions and drop expired ones, without blocking consumers."""
    config = load_consumer_settings(inbox_retention_days=retention_days)
    settings = state(ctx).settings
    require_session(settings, "oncepipe inbox maintain", "SET ROLE and a session advisory lock")
    with connect(settings, "oncepipe-inbox-maintenance", autocommit=True) as conn:
        report = maintain(
            conn,
            retention_days=config.inbox_retention_days,
            ahead_days=ahead_days,
            dry_run=dry_run,
        )
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "skipped": report.skipped,
                "created": report.created,
                "dropped": report.dropped,
                "kept": report.kept,
                "failed": report.failed,
            }
        )
        _fail_on(report.failed)
        return
    verb = "would " if dry_run else ""
    if report.skipped:
        print("another maintainer is running; nothing done", file=sys.stderr)
    for name in report.created:
        print(f"{verb}create\t{name}")
    for name in report.dropped:
        print(f"{verb}drop\t{name}")
    print(f"{len(report.kept)} partition(s) kept", file=sys.stderr)
    _fail_on(report.failed)


def _fail_on(failed: dict[str, str]) -> None:
    """Exit 1 after the other steps ran when one of them failed."""
    for name, reason in failed.items():
        print(f"{name}: {reason}", file=sys.stderr)
    if failed:
        raise OncepipeError(f"inbox maintenance failed for {len(failed)} partition(s)")


@app.command("partitions")
def partitions_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """List the inbox's partitions, oldest first, with their upper bound and estimated rows."""
    settings = state(ctx).settings
    with connect(settings, "oncepipe-inbox") as conn:
        found = list_partitions(conn)
    if as_json:
        emit_json(
            [
                {"name": p.name, "upper": p.upper.isoformat(), "estimated_rows": p.estimated_rows}
                for p in found
            ]
        )
        return
    for p in found:
        print(f"{p.name}\t{p.upper.isoformat()}\t{p.estimated_rows}")
