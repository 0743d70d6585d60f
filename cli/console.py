"""``oncepipe console``: the dead-letter console in the browser (README "Dead-letter console").

``oncepipe console`` serves; ``oncepipe console hash-password NAME`` makes a password-file line.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

import typer

from cli.event_types import IMPORT, import_event_modules
from cli.options import build_settings
from cli.preflight import check_database
from cli.shared import state
from cli.status import snapshot
from console import ConsoleSettings, hash_password, serve
from oncepipe.errors import ConfigError

__all__ = ["console_app"]

console_app = typer.Typer(
    help="Serve the dead-letter console: overview, failures, dead letters, replay and discard.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)


@console_app.callback()
def console(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, help="address to listen on [env ONCEPIPE_CONSOLE_HOST, default 127.0.0.1]"
    ),
    port: int | None = typer.Option(
        None, help="port, 0 for any free one [env ONCEPIPE_CONSOLE_PORT, default 8090]"
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="users, one `name:scrypt$...` line each (see hash-password) "
        "[env ONCEPIPE_CONSOLE_PASSWORD_FILE]",
    ),
    trusted_header: str | None = typer.Option(
        None,
        "--trusted-header",
        help="take the user from this header, set by an authenticating reverse proxy "
        "[env ONCEPIPE_CONSOLE_TRUSTED_HEADER]",
    ),
    read_only: bool | None = typer.Option(
        None, "--read-only", help="show, never replay or discard [env ONCEPIPE_CONSOLE_READ_ONLY]"
    ),
    port_file: Path | None = typer.Option(
        None, "--port-file", help="write the port actually bound to this file"
    ),
    modules: list[str] | None = IMPORT,
) -> None:
    """Serve the console until SIGTERM. Refuses to start without a way to authenticate."""
    if ctx.invoked_subcommand is not None:
        return
    settings = state(ctx).settings
    console_settings = build_settings(
        ConsoleSettings,
        host=host,
        port=port,
        password_file=password_file,
        trusted_header=trusted_header,
        read_only=read_only,
    )
    import_event_modules(modules)
    check_database(settings, "oncepipe-console")

    def overview() -> dict[str, Any]:
        return snapshot(settings, None, 60.0, 5.0)

    serve(settings, console_settings, overview, port_file=port_file)


@console_app.command("hash-password")
def hash_password_command(
    name: str = typer.Argument(..., help="the user's name"),
) -> None:
    """Print a password-file line for NAME; the password is read from the terminal or stdin."""
    if ":" in name or not name.strip():
        raise ConfigError("a user name must not be empty nor contain ':'")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigError("choose a password of 8 characters or more")
    print(f"{name}:{hash_password(password)}")
