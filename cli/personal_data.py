"""``oncepipe dlq purge`` and ``oncepipe dlq erase``: personal data out of PostgreSQL, recorded.

``purge`` runs as the dlq tool's role; ``erase`` as the migrator (it deletes rows of every
component, acting as the schema's owner).

Both write one row of ``oncepipe.erasure_ledger`` (who, when, the criteria with any key as its
SHA-256, rows deleted per table; never a payload) in the transaction that deletes. The Kafka
topics keep their records until their retention or compaction (docs/operations/personal-data.md).
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta

import typer

from cli.shared import EXIT_USAGE, emit_json, state
from consumers.dlq import PurgeReport, erase_key, key_digest, purge_dead_letters
from oncepipe.db import connect, require_session
from oncepipe.errors import ConfigError
from oncepipe.migrations import act_as_owner

__all__ = ["erase", "purge"]

_AGE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _age(text: str | None) -> timedelta | None:
    if text is None:
        return None
    match = _AGE.match(text.strip())
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not an age such as 30m, 12h or 30d", param_hint="--older-than"
        )
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _confirm(question: str, yes: bool, dry_run: bool) -> None:
    if yes or dry_run:
        return
    if not sys.stdin.isatty():
        print("oncepipe: refusing to delete without confirmation: no terminal; pass --yes",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(EXIT_USAGE)
    if not typer.confirm(question, err=True):
        print("oncepipe: nothing deleted", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE)


def _print(report: PurgeReport, *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        emit_json({"dry_run": dry_run, "deleted": report.counts, "ledger_id": report.ledger_id})
        return
    for table, count in report.counts.items():
        print(f"{table}\t{count}")
    verb = "would be deleted (dry run)" if dry_run else "deleted"
    ledger = f"; erasure ledger row {report.ledger_id}" if report.ledger_id is not None else ""
    print(f"{report.total} row(s) {verb}{ledger}", file=sys.stderr)


def purge(
    ctx: typer.Context,
    older_than: str | None = typer.Option(
        None, "--older-than", help="dead letters written more than this ago: 30m, 12h, 30d"
    ),
    topics: list[str] | None = typer.Option(
        None, "--topic", "-t", help="source topic or its dead-letter topic; repeatable"
    ),
    key: str | None = typer.Option(None, "--key", help="only dead letters with this key (UTF-8)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="count, delete nothing, record nothing"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    as_json: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
) -> None:
    """Delete dead letters kept in PostgreSQL (the outbox rows they were sent from), recorded."""
    if older_than is None and not topics and key is None:
        print("oncepipe: dlq purge needs a filter: --older-than, --topic or --key",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(EXIT_USAGE)
    age = _age(older_than)
    _confirm("Delete the matching dead letters?", yes, dry_run)
    with connect(state(ctx).settings, "oncepipe-dlq") as conn:
        report = purge_dead_letters(
            conn,
            older_than=age,
            topics=tuple(topics or ()),
            key=key.encode("utf-8") if key is not None else None,
            dry_run=dry_run,
        )
    _print(report, dry_run=dry_run, as_json=as_json)


def erase(
    ctx: typer.Context,
    key: str = typer.Option(..., "--key", help="the key (UTF-8) whose data goes"),
    event_ids: list[str] | None = typer.Option(
        None, "--event-id", help="more events of this key whose inbox rows go; repeatable"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="count, delete nothing, record nothing"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    as_json: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
) -> None:
    """Erase one key: outbox rows, dead letters, parked events, retries and inbox rows; recorded."""
    raw = key.encode("utf-8")
    settings = state(ctx).settings
    require_session(settings, "oncepipe dlq erase", "SET ROLE")
    _confirm(f"Erase every row of key sha256:{key_digest(raw)[:12]}?", yes, dry_run)
    with connect(settings, "oncepipe-dlq-erase") as conn:
        # Rows of every component go: only the schema's owner may delete them all.
        if not act_as_owner(conn):
            raise ConfigError(
                "oncepipe dlq erase deletes rows of every component (inbox, outbox, parked "
                "events, retries): log in as the migrator role (a member of oncepipe_owner)"
            )
        report = erase_key(conn, raw, event_ids=tuple(event_ids or ()), dry_run=dry_run)
    _print(report, dry_run=dry_run, as_json=as_json)
