"""Configuration, read once at the entry point from ``ONCEPIPE_*`` environment variables.

Inner components take these frozen models and never read the environment themselves.

Every settings model is read through ``read_settings``, the one place that turns pydantic's
``ValidationError`` into a ``ConfigError`` naming the environment variables.

Public names: ``Settings``, ``load_settings``, ``read_settings``, ``split_names``,
``raw_secret_values`` (the Kafka secrets the environment points at, for redaction).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from oncepipe.conninfo import check_dsn, dsn_secrets, mask_dsn
from oncepipe.errors import ConfigError
from oncepipe.kafka_security import (
    SECRETS,
    raw_secret_values,
    read_secret_files,
    security_problem,
)

__all__ = ["Settings", "load_settings", "raw_secret_values", "read_settings", "split_names"]

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER"]


class Settings(BaseSettings):
    """Settings shared by every oncepipe process."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:29092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    # --- Kafka security (README "Kafka security (clients)"); rules in oncepipe.kafka_security.
    # Secrets come from *_FILE variables or the secrets directory, never inline or from argv.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL (TLS, optionally mutual) or SASL_SSL"
    )
    kafka_allow_unencrypted_sasl: bool = Field(
        False, description="accept SASL_PLAINTEXT, which sends credentials unencrypted"
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="SASL mechanism, required with SASL_SSL"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (or API key)")
    kafka_sasl_password_file: Path | None = Field(None, description="file holding the password")
    kafka_sasl_password: SecretStr | None = Field(None, description="read from its *_FILE only")
    kafka_ssl_ca_file: Path | None = Field(
        None, description="PEM CA certificate(s) to verify the brokers; default: system store"
    )
    kafka_ssl_certificate_file: Path | None = Field(None, description="client certificate (PEM)")
    kafka_ssl_key_file: Path | None = Field(None, description="client private key (PEM)")
    kafka_ssl_key_password_file: Path | None = Field(None, description="file: the key's password")
    kafka_ssl_key_password: SecretStr | None = Field(None, description="read from its *_FILE only")
    kafka_ssl_verify_hostname: bool = Field(
        True, description="check the broker certificate's host name (false: logged as a warning)"
    )
    kafka_oauthbearer_client_id: str | None = Field(None, description="OIDC client id")
    kafka_oauthbearer_client_secret_file: Path | None = Field(
        None, description="file holding the OIDC client secret"
    )
    kafka_oauthbearer_client_secret: SecretStr | None = Field(
        None, description="read from its *_FILE only"
    )
    kafka_oauthbearer_token_endpoint_url: str | None = Field(
        None, description="OIDC token endpoint (https://)"
    )
    kafka_oauthbearer_scope: str | None = Field(None, description="OIDC scope to request")
    kafka_oauthbearer_extensions: str | None = Field(
        None, description="SASL extensions, key=value[,key=value] (Confluent Cloud's pool id)"
    )
    kafka_secrets_dir: Path | None = Field(
        None, description="folder of secret files named like their variables, lowercase"
    )
    # --- end of Kafka security
    database_url: SecretStr = Field(
        SecretStr("postgresql://oncepipe@127.0.0.1:25432/oncepipe"),
        description="PostgreSQL connection string: a postgresql:// URL or libpq key=value pairs",
    )
    database_pooler: Literal["none", "session", "transaction"] = Field(
        "none",
        description="what ONCEPIPE_DATABASE_URL leads to: PostgreSQL (none) or a PgBouncer pool "
        "in session or transaction mode (README 'PgBouncer')",
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

    @model_validator(mode="before")
    @classmethod
    def _read_kafka_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            try:
                read_secret_files(data, os.environ)
            except ValueError as exc:
                raise PydanticCustomError("kafka_secret", str(exc)) from None
        return data

    @field_validator("kafka_ssl_ca_file", "kafka_ssl_certificate_file", "kafka_ssl_key_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
            raise PydanticCustomError(
                "unreadable_file", f"cannot read {path}; point it at a readable PEM file"
            )
        return path

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        problem = security_problem(self.__dict__)
        if problem:
            raise PydanticCustomError("kafka_security", problem)
        return self

    def kafka_environment(self) -> dict[str, str]:
        """The ``ONCEPIPE_KAFKA_*`` variables that give a child process these Kafka settings.

        Secrets travel as their ``*_FILE`` paths (or the secrets directory), never as values;
        a secret given in-process without a file does not reach the child. Paths are made
        absolute: the child may run elsewhere.
        """
        data = self.model_dump(include=set(KAFKA_FIELDS), exclude=set(SECRETS), exclude_none=True)
        return {f"ONCEPIPE_{name.upper()}": _variable_text(v) for name, v in data.items()}

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with secrets masked, for printing."""
        data = self.model_dump(mode="json")
        data["database_url"] = mask_dsn(self.database_url.get_secret_value())
        # A Kafka secret shows as masked when held; unset, its *_FILE line says enough.
        return {k: v for k, v in data.items() if not (k in SECRETS and v is None)}

    def secrets(self) -> list[str]:
        """Every secret value these settings hold, for redacting any text shown or logged."""
        kafka = [getattr(self, field) for field in SECRETS]
        return dsn_secrets(self.database_url.get_secret_value()) + [
            secret.get_secret_value() for secret in kafka if secret is not None
        ]


def _variable_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value.absolute()) if isinstance(value, Path) else str(value)


KAFKA_FIELDS = frozenset(name for name in Settings.model_fields if name.startswith("kafka_"))


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
