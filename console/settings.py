"""The console's settings (``ONCEPIPE_CONSOLE_*``), read once at the entry point.

Public names: ``ConsoleSettings``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConsoleSettings"]


class ConsoleSettings(BaseSettings):
    """How ``oncepipe console`` listens, whom it lets in, and what it shows."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_CONSOLE_", frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8090, ge=0, le=65535, description="port to listen on (0: any free one)")
    password_file: Path | None = Field(
        None, description="lines `name:scrypt$...` from `oncepipe console hash-password`"
    )
    trusted_header: str | None = Field(
        None,
        description="take the user's name from this request header, set by a reverse proxy "
        "that authenticates (and strips the header from what clients send)",
    )
    read_only: bool = Field(False, description="show everything, change nothing")
    redact_fields: str = Field(
        "",
        description="comma-separated event fields and header names never shown (personal data)",
    )
    secret_key: SecretStr | None = Field(
        None, description="signs the session cookie; default: a random one per start"
    )
    page_size: int = Field(50, ge=1, le=1000, description="dead letters per page")
    rate: float = Field(50.0, gt=0, description="default replay rate (dead letters per second)")
    max_action: int = Field(
        10_000, ge=1, description="most dead letters one action (or preview) takes"
    )
    index_interval_s: float = Field(
        5.0, gt=0, description="read new dead letters into the index this often"
    )

    @model_validator(mode="after")
    def _one_way_in(self) -> ConsoleSettings:
        if self.password_file is None and not self.trusted_header:
            raise ValueError(
                "the console needs a way to authenticate: --password-file (users made with "
                "`oncepipe console hash-password`) or --trusted-header (a reverse proxy's)"
            )
        return self

    @property
    def redacted(self) -> frozenset[str]:
        """The redacted field and header names, lower case."""
        return frozenset(n.strip().lower() for n in self.redact_fields.split(",") if n.strip())
