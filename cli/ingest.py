"""``oncepipe ingest``: the HTTP door for upstream services (README "HTTP ingest").

``oncepipe ingest`` serves; ``oncepipe ingest new-key --client NAME`` makes an API key and the
clients-file entry holding its hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.event_types import IMPORT, import_event_modules
from cli.options import build_settings
from cli.preflight import check_database
from cli.shared import state
from ingest import IngestSettings, hash_key, new_key, serve
from oncepipe.errors import ConfigError
from schemas import CatalogError, register_schema_path

__all__ = ["ingest_app"]

ingest_app = typer.Typer(
    help="Serve POST /v1/events/{type} with Idempotency-Key: retries never become new events.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@ingest_app.callback()
def ingest(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, help="address to listen on [env ONCEPIPE_INGEST_HOST, default 127.0.0.1]"
    ),
    port: int | None = typer.Option(
        None, help="port to listen on, 0 for any free one [env ONCEPIPE_INGEST_PORT, default 8080]"
    ),
    port_file: Path | None = typer.Option(
        None, "--port-file", help="write the port actually bound to this file"
    ),
    modules: list[str] | None = IMPORT,
) -> None:
    """Serve the ingest API until SIGTERM (requests in flight finish)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = state(ctx).settings
    ingest_settings = build_settings(IngestSettings, host=host, port=port)
    import_event_modules(modules)
    try:
        register_schema_path(settings.schema_path)
    except CatalogError as exc:
        raise ConfigError(str(exc)) from exc
    check_database(settings, "oncepipe-ingest")
    serve(settings, ingest_settings, port_file=port_file)


@ingest_app.command("new-key")
def new_key_command(
    client: str = typer.Option(..., "--client", help="the client's name (its dedupe namespace)"),
    event_type: list[str] | None = typer.Option(
        None, "--event-type", help="an event type it may post, repeatable (default: every type)"
    ),
) -> None:
    """Print a new API key (give it to the client) and its clients-file entry (keep that)."""
    key = new_key()
    entry = {"name": client, "key_sha256": hash_key(key), "event_types": event_type or ["*"]}
    print(f"api key (shown once): {key}")
    print(json.dumps(entry))
