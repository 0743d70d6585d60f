"""The ``oncepipe`` command line, above the workers: one entry point, one module a command group.

- ``run``: the ``oncepipe`` console script (a worker command catches SIGTERM from its first
  line on); ``app`` is the typer application, ``run_app`` runs any typer app built on
  ``OncepipeGroup`` so that an oncepipe error is one line on stderr and an exit code
  (``EXIT_FAILURE``, ``EXIT_USAGE``, ``EXIT_OK``).
- For commands built on it (the demo's): ``state`` and ``AppState`` (the root options),
  ``build_settings`` (settings from options and environment), ``emit_json``,
  ``check_topic_names``. (Stopping on SIGTERM is ``oncepipe.signals``, below the workers.)

Importing this package is light (the standard library only), so the console script can guard
its start-up before anything heavy loads; every other name is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cli.entry import run

if TYPE_CHECKING:
    from cli.failures import OncepipeGroup
    from cli.main import app, run_app
    from cli.options import build_settings
    from cli.preflight import check_topic_names
    from cli.shared import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, AppState, emit_json, state

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "AppState",
    "OncepipeGroup",
    "app",
    "build_settings",
    "check_topic_names",
    "emit_json",
    "run",
    "run_app",
    "state",
]

# Where each lazily imported name lives.
_HOMES = {
    "EXIT_FAILURE": "cli.shared",
    "EXIT_OK": "cli.shared",
    "EXIT_USAGE": "cli.shared",
    "AppState": "cli.shared",
    "OncepipeGroup": "cli.failures",
    "app": "cli.main",
    "build_settings": "cli.options",
    "check_topic_names": "cli.preflight",
    "emit_json": "cli.shared",
    "run_app": "cli.main",
    "state": "cli.shared",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562), keeping ``import cli`` light."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'cli' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
