"""Helpers for subcommands whose flags override ``ONCEPIPE_*`` settings.

Public names: ``build_settings``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from oncepipe.settings import read_settings

__all__ = ["build_settings"]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def build_settings(model: type[SettingsT], **flags: Any) -> SettingsT:
    """Settings from the environment, with the flags that were given (not None) on top."""
    return read_settings(model, flags)
