"""Helpers for subcommands whose flags override ``ONCEPIPE_*`` settings.

Public names: ``build_settings``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from oncepipe.errors import ConfigError

__all__ = ["build_settings"]

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
