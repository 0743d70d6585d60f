"""Every failure of a subcommand becomes one oncepipe error: one line, no traceback, no secret.

The root group's ``invoke`` runs every subcommand (and the settings callback), so wrapping it
catches what the commands let through: driver errors (psycopg, librdkafka), timeouts, and
anything unexpected. ``ConfigError`` (exit 2) is for what a retry cannot fix; other
``OncepipeError``s (exit 1) for failures. Messages are redacted with the secrets of the
settings, and chained exceptions are dropped so that no traceback can quote them.

Public names: ``OncepipeGroup``, ``translate``.
"""

from __future__ import annotations

import concurrent.futures
import os
import traceback
from typing import Any

import psycopg
import typer
import typer.core

from cli.preflight import login_failure
from oncepipe.conninfo import connection_problem, dsn_secrets, redact
from oncepipe.errors import BrokerError, ConfigError, DatabaseUnavailableError, OncepipeError
from oncepipe.kafka import KafkaException, broker_error, probe_brokers
from oncepipe.settings import Settings, raw_secret_values

__all__ = ["OncepipeGroup", "translate"]

_DEBUG_VARIABLE = "ONCEPIPE_LOG_LEVEL"


def _secrets() -> list[str]:
    # Read the raw variable: the settings may be the thing that failed to load.
    return dsn_secrets(os.environ.get("ONCEPIPE_DATABASE_URL", "")) + raw_secret_values(os.environ)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def translate(exc: Exception, secrets: list[str]) -> OncepipeError:
    """The oncepipe error to report for ``exc``, its message redacted and on one line."""
    if isinstance(exc, DatabaseUnavailableError) and isinstance(exc.__cause__, psycopg.Error):
        exc = exc.__cause__  # the driver's error tells an outage from a wrong setting
    if isinstance(exc, KafkaException):
        exc = broker_error(exc, "Kafka")
    if isinstance(exc, BrokerError):
        refused = login_failure(exc, secrets)
        if refused is not None:
            return refused
    if isinstance(exc, OncepipeError):
        exc.args = (redact(_one_line(str(exc)), secrets) + _broker_hint(exc),)
        return exc
    if isinstance(exc, psycopg.Error):
        return _database_error(exc, secrets)
    if isinstance(exc, TimeoutError | concurrent.futures.TimeoutError):
        return OncepipeError(
            "timed out waiting for Kafka: check ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS (oncepipe config) "
            "and that the broker runs (make up)"
        )
    detail = redact(_one_line(str(exc)), secrets)
    return OncepipeError(
        f"unexpected {type(exc).__name__}: {detail or 'no message'} "
        f"(set {_DEBUG_VARIABLE}=DEBUG for the traceback)"
    )


def _database_error(exc: psycopg.Error, secrets: list[str]) -> OncepipeError:
    lines = str(exc).strip().splitlines()
    first = redact(_one_line(lines[0]) if lines else type(exc).__name__, secrets)
    state = exc.sqlstate or "no SQLSTATE"
    if isinstance(exc, psycopg.OperationalError):
        if first.startswith(_CONNECTING) or (exc.sqlstate or "") in _LOGIN:
            return connection_problem(exc, secrets)
        # Anything else operational means an open session was lost: shutdown, restart, network.
        return OncepipeError(
            f"PostgreSQL ended the session during the run ({state}: {first}); check that the "
            "server runs (make up), then run the command again"
        )
    if isinstance(exc, psycopg.ProgrammingError):
        return ConfigError(
            f"PostgreSQL refused a statement ({state}: {first}); the database schema may be out "
            "of date: run oncepipe migrate"
        )
    return OncepipeError(f"PostgreSQL failed ({state}: {first}); run the command again")


# librdkafka's codes for brokers that cannot be reached (the address or the broker is wrong).
_UNREACHABLE_BROKER = frozenset({"_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN", "_RESOLVE"})
_BROKER_HINT = (
    "; check ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS (oncepipe config) and that the broker runs (make up)"
)


def _broker_hint(exc: OncepipeError) -> str:
    if not isinstance(exc, BrokerError):
        return ""
    if exc.name in _UNREACHABLE_BROKER:
        return _BROKER_HINT
    if exc.name.endswith("_AUTHORIZATION_FAILED"):
        user = os.environ.get("ONCEPIPE_KAFKA_SASL_USERNAME")
        who = f"Kafka user {user!r}" if user else "this client's Kafka principal"
        return f"; {who} has no ACL for this: grant it, or run as the component's own user"
    return ""


# How psycopg words a failure to open a connection (as opposed to losing an open one).
_CONNECTING = ("connection failed", "connection is bad", "connection timeout")
_LOGIN = frozenset({"28000", "28P01", "3D000"})


def _click_exception() -> type[Exception]:
    """The ClickException class, whether typer depends on click or vendors it."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


# Exits, aborts and usage errors the CLI framework reports itself (exit codes 0-2).
_FRAMEWORK = (typer.Exit, typer.Abort, _click_exception())


class OncepipeGroup(typer.core.TyperGroup):
    """The root command group: turns whatever a subcommand raises into one oncepipe error."""

    def invoke(self, ctx: Any) -> Any:
        """Run the subcommand; the framework's own exits and usage errors pass unchanged."""
        try:
            return super().invoke(ctx)
        except _FRAMEWORK:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is reported as one line
            secrets = _secrets()
            if os.environ.get(_DEBUG_VARIABLE, "").upper() == "DEBUG":
                text = "".join(traceback.format_exception(exc))
                typer.echo(redact(text, secrets), err=True, nl=False)
            error = translate(exc, secrets)
            if _unreachable(exc, error):
                error = _refused_login(ctx) or error
            raise error from None


def _unreachable(exc: Exception, error: OncepipeError) -> bool:
    timed_out = isinstance(exc, TimeoutError | concurrent.futures.TimeoutError)
    return timed_out or (isinstance(error, BrokerError) and error.name in _UNREACHABLE_BROKER)


_LOGIN_PROBE_S = 5.0


def _refused_login(ctx: Any) -> ConfigError | None:
    """Why brokers that "do not answer" may in fact have refused the login or the TLS handshake.

    librdkafka reports those beside the request that then times out; one short probe tells a
    wrong password or CA (exit 2, what to fix) from an outage. Plaintext has no login.
    """
    settings = getattr(ctx.find_root().obj, "settings", None)
    if not isinstance(settings, Settings) or settings.kafka_security_protocol == "PLAINTEXT":
        return None
    error = probe_brokers(settings, _LOGIN_PROBE_S)
    return login_failure(error, settings.secrets()) if error is not None else None
