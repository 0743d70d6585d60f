"""Administrative subcommands: ``migrate`` and ``config``."""

from __future__ import annotations

import sys

import typer

from cli.shared import emit_json, state
from oncepipe.db import require_session
from oncepipe.migrations import apply_migrations, pending_migrations

__all__ = ["config", "migrate"]


def migrate(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="list pending migrations, apply none"),
    as_json: bool = typer.Option(False, "--json", help="print the migration ids as JSON"),
) -> None:
    """Apply pending database migrations (forward-only; safe to run from several workers)."""
    require_session(state(ctx).settings, "oncepipe migrate", "SET ROLE and a session lock")
    url = state(ctx).settings.database_url.get_secret_value()
    ids = pending_migrations(url) if dry_run else apply_migrations(url)
    if as_json:
        emit_json({"dry_run": dry_run, "migrations": ids})
        return
    verb = "pending" if dry_run else "applied"
    for migration_id in ids:
        print(migration_id)
    print(f"{len(ids)} migration(s) {verb}", file=sys.stderr)


def config(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Show the effective configuration, secrets masked."""
    data = state(ctx).settings.masked()
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        shown = ",".join(sorted(value)) if isinstance(value, list) else value
        print(f"ONCEPIPE_{key.upper()}={shown}")
