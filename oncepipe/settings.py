"""Configuration, read once at the entry point from ``ONCEPIPE_*`` environment variables.

Inner components take these frozen models and never read the environment themselves.

Every settings model is read through ``read_settings``, the one place that turns pydantic's
``ValidationError`` into a ``ConfigError`` naming the environment variables.

Public names: ``Settings``, ``load_settings``, ``read_settings``, ``split_names``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from oncepipe.conninfo import check_dsn, dsn_secrets, mask_dsn
from oncepipe.errors import ConfigError

__all__ = ["Settings", "load_settings", "read_settings", "split_names"]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class Settings(BaseSettings):
    """Settings shared by every oncepipe process."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:39092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    database_url: SecretStr = Field(
        SecretStr("postgresql://oncepipe@127.0.0.1:35432/oncepipe"),
        description="PostgreSQL connection string: a postgresql:// URL or libpq key=value pairs",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, JSON lines otherwise"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    idle_in_transaction_timeout_ms: int = Field(
        60_000, ge=0, description="server ends a worker session idle in a transaction this long"
    )

    # Event types declared by .avsc files alone (schemas.register_schema_path reads it).
    schema_path: str = Field(
        "", description="directories of .avsc event types, separated by the OS path separator"
    )

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with secrets masked, for printing."""
        data = self.model_dump(mode="json")
        data["database_url"] = mask_dsn(self.database_url.get_secret_value())
        return data

    def secrets(self) -> list[str]:
        """Every secret value these settings hold, for redacting any text shown or logged."""
        return dsn_secrets(self.database_url.get_secret_value())


def split_names(value: str) -> list[str]:
    """The non-empty names of a comma-separated environment value, in order."""
    return [name.strip() for name in value.split(",") if name.strip()]


def read_settings(
    model: type[SettingsT], overrides: Mapping[str, Any], *, what: str = "configuration"
) -> SettingsT:
    """``model`` from the environment, with the ``overrides`` that were given (not None) on top.

    Invalid values raise one ``ConfigError``, ``invalid <what>: VARIABLE: reason; ...``, naming
    the environment variable of each field (a flag, where there is one, may be spelled
    otherwise); a check of the whole model gives its reason alone. Nothing is chained to it:
    pydantic's error quotes the input, which may be a secret.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return model(**given)
    except ValidationError as exc:
        prefix = str(model.model_config.get("env_prefix", ""))
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"]
            for err in exc.errors()
        )
    raise ConfigError(f"invalid {what}: {problems}")  # outside the handler: nothing chained


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, refusing invalid ones with a ConfigError.

    A database URL that can never connect is refused too; no message quotes a secret.
    """
    settings = read_settings(Settings, overrides)
    check_dsn(settings.database_url.get_secret_value())
    return settings
