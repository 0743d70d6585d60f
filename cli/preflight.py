"""Start-up checks of the long-running commands: refuse what can never work, wait out outages.

A daemon (``consume``, ``relay``) rightly retries while PostgreSQL is down; it must not retry a
configuration that no retry can fix (a malformed URL, an unknown role, a wrong password, an
invalid topic name). These checks tell the two apart before the worker starts.

Public names: ``check_broker``, ``check_database``, ``check_topic_names``.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from oncepipe.conninfo import connection_problem
from oncepipe.errors import ConfigError, OncepipeError
from oncepipe.kafka import AdminClient, KafkaException
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from schemas import topic_name_problem

__all__ = ["check_broker", "check_database", "check_topic_names"]

_BROKER_TIMEOUT_S = 10.0


def check_topic_names(names: Iterable[str], flag: str = "--topic") -> None:
    """Raise ``ConfigError`` for a name Kafka would refuse (it can never be created)."""
    for name in names:
        if topic_name_problem(name) is not None:
            raise ConfigError(
                f"{flag} {name!r} is not a valid Kafka topic name: use 1 to 249 "
                "letters, digits, '.', '_' or '-'"
            )


def check_database(settings: Settings, application_name: str) -> None:
    """Connect once: a login that can never succeed raises ``ConfigError``; an outage only logs.

    The worker then starts either way when the server is merely unreachable, and waits for it.
    """
    try:
        with psycopg.connect(
            settings.database_url.get_secret_value(),
            connect_timeout=10,
            application_name=application_name,
        ):
            return
    except psycopg.Error as exc:
        problem = connection_problem(exc, settings.secrets())
    if isinstance(problem, ConfigError):
        raise problem
    log = get_logger("preflight")
    log.warning("PostgreSQL is unreachable; waiting for it", reason=str(problem))


def check_broker(admin: AdminClient, settings: Settings) -> None:
    """Ask the brokers for metadata once; ``OncepipeError`` when none answers in time."""
    try:
        admin.list_topics(timeout=_BROKER_TIMEOUT_S)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        reason = error.str() if hasattr(error, "str") else str(error)
        raise OncepipeError(
            f"Kafka at {settings.kafka_bootstrap_servers} did not answer within "
            f"{_BROKER_TIMEOUT_S:.0f} s ({reason}); check ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS "
            "(oncepipe config) and that the broker runs (make up)"
        ) from None
