"""Helpers for subcommands whose flags override ``ONCEPIPE_*`` settings.

Public names: ``build_settings``, ``install_stop_handlers``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from oncepipe.settings import read_settings

__all__ = ["build_settings", "install_stop_handlers"]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def build_settings(model: type[SettingsT], **flags: Any) -> SettingsT:
    """Settings from the environment, with the flags that were given (not None) on top."""
    return read_settings(model, flags)


def install_stop_handlers(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM and SIGINT: the worker finishes its batch, then exits 0.

    Replaces the start-up guard of ``cli.entry`` (exit 0 at once): call it before the
    worker joins or holds anything.
    """

    def handler(signum: int, _frame: object) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
