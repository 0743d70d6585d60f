"""``oncepipe maintain``: the database's scheduled upkeep, run as the schema's owner.

Workers run no DDL. This command, scheduled by the deployment (cron, a systemd timer, a
Kubernetes CronJob; daily is enough), creates the inbox's partitions ``--ahead-days`` ahead and
drops those past the retention. It logs in with a member of ``oncepipe_owner`` (the migrator
role) and acts as the owner.

A missed run stops nothing until the pre-created days run out; after that, consumers retry
their batches (nothing is lost, the lag grows) and log an error every interval until this runs.
It then says it ran late, creates today's partition first, and consumers resume.

It also keeps personal data to its retention: outbox rows of dead letters older than
``--dead-letter-retention-days`` (sent or not) and published outbox rows older than
``--outbox-retention-days`` (the relay deletes those too, when it runs), one erasure-ledger
row per run that deleted anything.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import psycopg
import typer

from cli.shared import emit_json, state
from consumers import covered_until, list_partitions, load_consumer_settings, maintain
from consumers.dlq import PurgeReport, apply_retention
from oncepipe.db import connect, require_session
from oncepipe.errors import OncepipeError, first_line

__all__ = ["maintain_command"]

DEFAULT_AHEAD_DAYS = 7


def maintain_command(
    ctx: typer.Context,
    retention_days: int | None = typer.Option(
        None,
        "--retention-days",
        help="drop inbox partitions older than this "
        "[env ONCEPIPE_CONSUMER_INBOX_RETENTION_DAYS, 14]",
    ),
    ahead_days: int = typer.Option(
        DEFAULT_AHEAD_DAYS,
        "--ahead-days",
        min=1,
        help="create inbox partitions this many days ahead (runs missed meanwhile stop nothing)",
    ),
    dead_letter_days: float = typer.Option(
        30.0,
        "--dead-letter-retention-days",
        envvar="ONCEPIPE_DLQ_RETENTION_DAYS",
        min=0,
        help="delete dead letters' outbox rows older than this",
    ),
    outbox_days: float = typer.Option(
        7.0,
        "--outbox-retention-days",
        envvar="ONCEPIPE_OUTBOX_RETENTION_DAYS",
        min=0,
        help="delete published outbox rows older than this",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would change, change nothing"),
    as_json: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
) -> None:
    """Inbox partitions ahead and expired ones dropped; dead letters past retention deleted."""
    config = load_consumer_settings(inbox_retention_days=retention_days)
    settings = state(ctx).settings
    require_session(settings, "oncepipe maintain", "SET ROLE and a session advisory lock")
    now = datetime.now(UTC)
    with connect(settings, "oncepipe-maintain", autocommit=True) as conn:
        before = covered_until(list_partitions(conn))
        report = maintain(
            conn, retention_days=config.inbox_retention_days, ahead_days=ahead_days, dry_run=dry_run
        )
        after = covered_until(list_partitions(conn))
        try:
            retention = apply_retention(
                conn, dead_letter_days=dead_letter_days, published_days=outbox_days,
                dry_run=dry_run,
            )  # fmt: skip
        except psycopg.errors.InsufficientPrivilege as exc:
            retention = PurgeReport()
            report.failed["outbox retention"] = first_line(exc)
    late = before is None or before <= now
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "late": late,
                "skipped": report.skipped,
                "created": report.created,
                "dropped": report.dropped,
                "kept": report.kept,
                "failed": report.failed,
                "covered_until": after.isoformat() if after else None,
                "retention_deleted": retention.counts,
            }
        )
    else:
        if late:
            print(
                "maintenance ran late: no inbox partition covered now, consumers were retrying "
                "their batches",
                file=sys.stderr,
            )
        if report.skipped:
            print("another maintainer is running; nothing done", file=sys.stderr)
        verb = "would " if dry_run else ""
        for name in report.created:
            print(f"{verb}create\t{name}")
        for name in report.dropped:
            print(f"{verb}drop\t{name}")
        shown = after.isoformat() if after else "nothing"
        print(f"inbox partitions cover until {shown}", file=sys.stderr)
        for table, count in retention.counts.items():
            print(f"{verb}delete\t{table}\t{count}")
    for name, reason in report.failed.items():
        print(f"{name}: {reason}", file=sys.stderr)
    if report.failed:
        raise OncepipeError(f"maintenance failed for {len(report.failed)} step(s)")
