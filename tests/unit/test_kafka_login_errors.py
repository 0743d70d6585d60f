"""librdkafka's login and TLS errors become one line that says what to fix (exit 2).

The errors are built as librdkafka reports them (codes and texts seen against the secured
broker); the secured-broker tests in tests/integration/test_kafka_security_start.py run the
same paths end to end.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest
import structlog

from cli.failures import _secrets, translate
from cli.preflight import login_failure
from oncepipe.errors import BrokerError, ConfigError
from oncepipe.kafka import KafkaError, KafkaException, broker_error
from oncepipe.logging import configure_logging, get_logger
from oncepipe.settings import Settings

PASSWORD = "Lg9-7731-kafka-pw"  # noqa: S105 - a distinctive fake password to search for

AUTHENTICATION = (
    "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
)
HANDSHAKE = (
    "sasl_ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL "
    "routines::certificate verify failed: broker certificate could not be verified"
)
WRONG_PROTOCOL = (
    "127.0.0.1:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by "
    "incorrect security.protocol configuration (connecting to a SSL listener?)"
)


def _error(code: int, text: str) -> BrokerError:
    return broker_error(KafkaError(code, text), "Kafka")


def test_a_refused_password_says_which_settings_to_check() -> None:
    refused = login_failure(_error(KafkaError._AUTHENTICATION, AUTHENTICATION))
    assert isinstance(refused, ConfigError)
    message = str(refused)
    assert message.startswith("Kafka refused the login (_AUTHENTICATION: ")
    assert "invalid credentials" in message
    assert "ONCEPIPE_KAFKA_SASL_PASSWORD_FILE" in message
    assert "ONCEPIPE_KAFKA_SASL_USERNAME" in message


def test_an_unknown_ca_says_which_file_to_check() -> None:
    refused = login_failure(_error(KafkaError._SSL, HANDSHAKE))
    assert isinstance(refused, ConfigError)
    assert "the TLS handshake with Kafka failed" in str(refused)
    assert "certificate verify failed" in str(refused)
    assert "ONCEPIPE_KAFKA_SSL_CA_FILE" in str(refused)


def test_a_wrong_protocol_says_to_check_the_protocol() -> None:
    refused = login_failure(_error(KafkaError._TRANSPORT, WRONG_PROTOCOL))
    assert isinstance(refused, ConfigError)
    assert "ONCEPIPE_KAFKA_SECURITY_PROTOCOL" in str(refused)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (KafkaError._TRANSPORT, "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed"),
        (KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"),
        (KafkaError._TIMED_OUT, "Failed to get metadata"),
    ],
)
def test_an_outage_is_not_a_refused_login(code: int, text: str) -> None:
    assert login_failure(_error(code, text)) is None


def test_the_reason_is_redacted_and_on_one_line() -> None:
    refused = login_failure(
        _error(KafkaError._AUTHENTICATION, f"{AUTHENTICATION}\n user said {PASSWORD}"),
        [PASSWORD],
    )
    assert refused is not None
    assert PASSWORD not in str(refused)
    assert "\n" not in str(refused)


def test_translate_makes_a_refused_login_a_configuration_error() -> None:
    exc = KafkaException(KafkaError(KafkaError._AUTHENTICATION, AUTHENTICATION))
    error = translate(exc, [])
    assert isinstance(error, ConfigError)  # exit 2
    assert "Kafka refused the login" in str(error)


def test_translate_names_the_user_an_acl_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCEPIPE_KAFKA_SASL_USERNAME", "consumer")
    exc = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Authorization failed."))
    error = translate(exc, [])
    assert "TOPIC_AUTHORIZATION_FAILED" in str(error)
    assert "Kafka user 'consumer' has no ACL for this" in str(error)


def test_errors_are_redacted_with_the_kafka_secrets_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    monkeypatch.setenv("ONCEPIPE_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "pw"))
    assert PASSWORD in _secrets()
    error = translate(RuntimeError(f"boom {PASSWORD}"), _secrets())
    assert PASSWORD not in str(error)


def test_log_lines_mask_the_kafka_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="relay",
        kafka_sasl_password_file=tmp_path / "pw",
        log_format="json",
    )
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(settings)
        get_logger("test").warning("login", detail=f"password={PASSWORD}")
        logging.getLogger("oncepipe.librdkafka").error("SASL: %s", PASSWORD)
    finally:
        root.handlers[:], root.level = handlers, level
        structlog.reset_defaults()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(json.loads(line) for line in lines)
    assert PASSWORD not in stream.getvalue()
