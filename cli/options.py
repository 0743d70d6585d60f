"""Helpers for subcommands whose flags override ``ONCEPIPE_*`` settings.

Public names: ``build_settings``, ``install_stop_handlers``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from oncepipe.errors import ConfigError

__all__ = ["build_settings", "install_stop_handlers"]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def build_settings(model: type[SettingsT], **flags: Any) -> SettingsT:
    """Settings from the environment, with the flags that were given (not None) on top."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return model(**given)
    except ValidationError as exc:
        prefix = str(model.model_config.get("env_prefix", ""))
        # The variable's name only: a flag, where there is one, may be spelled otherwise.
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc


def install_stop_handlers(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM and SIGINT: the worker finishes its batch, then exits 0.

    Replaces the start-up guard of ``cli.entry`` (exit 0 at once): call it before the
    worker joins or holds anything.
    """

    def handler(signum: int, _frame: object) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
