"""Entry point of the ``oncepipe`` command.

Exit codes: 0 ok, 1 failure, 2 usage or configuration error. Errors print one line on
stderr saying what was wrong and what to do.
"""

from __future__ import annotations

import sys

import typer

from cli import admin, relay, topics
from cli import console as console_cli
from cli import consume as consume_cli
from cli import dlq as dlq_cli
from cli import inbox as inbox_cli
from cli import ingest as ingest_cli
from cli import offsets as offsets_cli
from cli import schema as schema_cli
from cli import status as status_cli
from cli.failures import OncepipeGroup
from cli.maintain import maintain_command
from cli.shared import EXIT_FAILURE, EXIT_USAGE, AppState
from oncepipe import __version__
from oncepipe.errors import ConfigError, OncepipeError
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings

__all__ = ["app", "run", "run_app"]

app = typer.Typer(
    name="oncepipe",
    help="Kafka to PostgreSQL with exactly-once effects. Configure with ONCEPIPE_* variables.",
    cls=OncepipeGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: rich markup would swallow the "[env ONCEPIPE_...]" hints.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"oncepipe {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        expose_value=True,
        help="print the version and exit",
    ),
) -> None:
    """Kafka to PostgreSQL with exactly-once effects. Configure with ONCEPIPE_* variables."""
    settings = load_settings()
    # Daemons log what their Kafka clients say; one-shot commands report one error line.
    configure_logging(settings, client_logs=ctx.invoked_subcommand in {"relay", "consume"})
    ctx.obj = AppState(settings=settings)


app.command("migrate")(admin.migrate)
app.command("config")(admin.config)
app.command("maintain")(maintain_command)
app.command("relay")(relay.relay)
app.add_typer(topics.topics_app, name="topics")
app.command("consume")(consume_cli.consume)
app.add_typer(offsets_cli.app, name="offsets")
app.add_typer(dlq_cli.dlq_app, name="dlq")
app.add_typer(inbox_cli.app, name="inbox")
app.add_typer(schema_cli.schema_app, name="schema")
app.add_typer(ingest_cli.ingest_app, name="ingest")
app.command("status")(status_cli.status)
app.add_typer(console_cli.console_app, name="console")


def run() -> None:
    """Run the CLI, turning oncepipe errors into one line on stderr and an exit code."""
    run_app(app)


def run_app(command: typer.Typer) -> None:
    """Run a typer app whose group is ``OncepipeGroup``: errors become one line and an exit code."""
    try:
        command()  # standalone: usage errors exit 2 on their own
    except ConfigError as exc:
        print(f"oncepipe: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except OncepipeError as exc:
        print(f"oncepipe: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
