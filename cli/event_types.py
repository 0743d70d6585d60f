"""``--import MODULE``: the user's modules that declare event types, imported before decoding.

Importing a module runs its ``@schemas.event_type`` decorators; the commands that decode
events (``schema``, ``dlq show``) take the option so that types outside the schema path and
the installed entry points are known too.

Public names: ``IMPORT``, ``import_event_modules``.
"""

from __future__ import annotations

import importlib

import typer

from oncepipe.errors import ConfigError

__all__ = ["IMPORT", "import_event_modules"]

IMPORT = typer.Option(
    None,
    "--import",
    metavar="MODULE",
    help="a module declaring event types (@schemas.event_type) to import first; repeatable",
)


def import_event_modules(modules: list[str] | None) -> None:
    """Import each module (registering its event types); a missing one is a ConfigError."""
    for name in modules or []:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"--import {name}: cannot import it ({exc}); is its package on PYTHONPATH?"
            ) from exc
