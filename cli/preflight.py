"""Start-up checks of the long-running commands: refuse what can never work, wait out outages.

A daemon (``consume``, ``relay``) rightly retries while PostgreSQL is down; it must not retry a
configuration that no retry can fix (a malformed URL, an unknown role, a wrong password, an
invalid topic name). These checks tell the two apart before the worker starts.

A Kafka login works the same way: a refused password or an unknown CA can never work and is
refused at start; brokers that do not answer are waited for.

Public names: ``check_broker``, ``check_broker_login``, ``check_consumer_acls``, ``check_database``,
``check_topic_names``, ``login_failure``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg

from oncepipe.conninfo import connection_problem, redact
from oncepipe.errors import BrokerError, ConfigError, OncepipeError
from oncepipe.kafka import missing_consumer_acls, probe_brokers, refused_login
from oncepipe.logging import get_logger
from oncepipe.settings import Settings
from schemas import topic_name_problem

__all__ = [
    "check_broker",
    "check_broker_login",
    "check_consumer_acls",
    "check_database",
    "check_topic_names",
    "login_failure",
]

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


def login_failure(error: BrokerError, secrets: Iterable[str] = ()) -> ConfigError | None:
    """The one-line ``ConfigError`` for a login or TLS handshake the brokers refused, else None.

    ``error`` is librdkafka's (``oncepipe.kafka.broker_error``); the line says what to check.
    """
    if not refused_login(error):
        return None
    reason = redact(" ".join(str(error).removeprefix("Kafka: ").split()), secrets)
    if error.name == "_SSL":
        return ConfigError(
            f"the TLS handshake with Kafka failed ({reason}); check that "
            "ONCEPIPE_KAFKA_SSL_CA_FILE holds the CA that signed the brokers' certificates, that "
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS names the brokers as their certificates do, and "
            "that the listener speaks TLS"
        )
    if error.name == "_TRANSPORT":
        return ConfigError(
            f"Kafka closed the connection at once ({reason}); check that "
            "ONCEPIPE_KAFKA_SECURITY_PROTOCOL is the protocol of the listener in "
            "ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS"
        )
    return ConfigError(
        f"Kafka refused the login ({reason}); check ONCEPIPE_KAFKA_SASL_MECHANISM, "
        "ONCEPIPE_KAFKA_SASL_USERNAME and the password in ONCEPIPE_KAFKA_SASL_PASSWORD_FILE "
        "(OAUTHBEARER: the ONCEPIPE_KAFKA_OAUTHBEARER_* variables)"
    )


def _probe(settings: Settings) -> BrokerError | None:
    """None when the brokers answer, else why not; a refused login raises its ConfigError."""
    error = probe_brokers(settings, _BROKER_TIMEOUT_S)
    refused = None if error is None else login_failure(error, settings.secrets())
    if refused is not None:
        raise refused
    return error


def check_broker(settings: Settings) -> None:
    """Ask the brokers for metadata once; ``OncepipeError`` when none answers in time.

    A refused login or TLS handshake raises ``ConfigError`` at once (it can never work).
    """
    error = _probe(settings)
    if error is None:
        return
    reason = redact(" ".join(str(error).removeprefix("Kafka: ").split()), settings.secrets())
    raise OncepipeError(
        f"Kafka at {settings.kafka_bootstrap_servers} did not answer within "
        f"{_BROKER_TIMEOUT_S:.0f} s ({reason}); check ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS "
        "(oncepipe config) and that the broker runs (make up)"
    )


def check_broker_login(settings: Settings) -> None:
    """For a daemon: refuse a login that can never work (exit 2); wait out brokers that are down.

    Plaintext has no login to check, so nothing is done there.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    error = _probe(settings)
    if error is None:
        return
    log = get_logger("preflight")
    log.warning("Kafka is unreachable; waiting for it", reason=str(error))


def check_consumer_acls(settings: Settings, group: str, topics: Sequence[str]) -> None:
    """For ``consume`` on a secured cluster: refuse a principal the brokers will never let read.

    Without READ on its topics and group a consumer would retry for ever; missing ACLs are an
    administrator's fix, so the worker stops at start with one line (exit 2) naming them.
    """
    if settings.kafka_security_protocol == "PLAINTEXT":
        return
    missing = missing_consumer_acls(settings, group, topics, _BROKER_TIMEOUT_S)
    if missing:
        user = settings.kafka_sasl_username or "this client's principal"
        raise ConfigError(
            f"Kafka user {user} may not consume: it lacks {', '.join(missing)}; ask the cluster's "
            "administrator for them (the local broker: python -m infra acls --topic T "
            "--group-prefix P) or run with the consumer's own credentials"
        )
