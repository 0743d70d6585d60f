"""What every subcommand shares: settings read once, output helpers, exit codes.

Public names: ``AppState``, ``EXIT_OK``, ``EXIT_FAILURE``, ``EXIT_USAGE``, ``emit_json``,
``state``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import typer

from oncepipe.settings import Settings

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "AppState", "emit_json", "state"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class AppState:
    """Settings read at the entry point, handed to every subcommand."""

    settings: Settings


def state(ctx: typer.Context) -> AppState:
    """The AppState stored on the root context by the main callback."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):  # pragma: no cover - the callback always sets it
        raise RuntimeError("oncepipe CLI context was not initialised")
    return obj


def emit_json(data: Any) -> None:
    """Write data as one JSON document to stdout."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
