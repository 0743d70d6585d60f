"""Configuration, read once at the entry point from ``ONCEPIPE_*`` environment variables.

Inner components take these frozen models and never read the environment themselves.

Public names: ``Settings``, ``load_settings``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from oncepipe.conninfo import check_dsn, dsn_secrets, mask_dsn
from oncepipe.errors import ConfigError

__all__ = ["Settings", "load_settings", "split_names"]


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


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, refusing invalid ones with a ConfigError.

    A database URL that can never connect is refused too; no message quotes a secret.
    """
    try:
        loaded: Settings | None = Settings(**overrides)
        problems = ""
    except ValidationError as exc:
        loaded = None
        problems = "; ".join(
            f"ONCEPIPE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
    if loaded is None:
        # Outside the handler: pydantic's error quotes the input, which may be a secret.
        raise ConfigError(f"invalid configuration: {problems}")
    settings = loaded
    check_dsn(settings.database_url.get_secret_value())
    return settings
