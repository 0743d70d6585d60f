"""Against the secured broker: a wrong password or a wrong CA ends a client at start.

Each command runs as the real ``oncepipe`` process with one principal's settings (file paths
from ``make env``), one of them spoiled: exit 2, exactly one line on stderr saying what to
check, nothing on stdout, and no password (the wrong one nor any principal's) anywhere.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli_cases import Outcome, run_all
from tests.fixtures.secured import SecuredKafka
from tests.fixtures.services import Services

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "Wr0ng-4471-kafka-pw"  # noqa: S105 - a distinctive fake password to search for

COMMANDS = {
    # Not checked at start: its metadata request times out (10 s), then one probe finds the
    # cause. First, so that the others run beside it.
    "dlq list": ["dlq", "list", "--topic", "sec.start"],
    "relay": ["relay"],
    "consume": ["consume", "--group", "sec-start", "--topic", "sec.start", "--handler", "clicks"],
    "topics create": ["topics", "create", "--topic", "sec.start"],
}


def _other_ca(path: Path) -> Path:
    """A valid CA certificate that did not sign the broker's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the broker's CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _assert_refused(outcome: Outcome, start: str, secrets: list[str]) -> None:
    shown = outcome.stdout + outcome.stderr
    assert outcome.code == 2, outcome
    assert outcome.stdout == "", outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(f"oncepipe: {start}"), lines[0]
    for secret in secrets:
        assert secret not in shown, outcome


def test_a_wrong_password_or_ca_ends_every_client_at_start_with_one_line(
    secured_kafka: SecuredKafka, services: Services, tmp_path: Path
) -> None:
    wrong_password = tmp_path / "wrong.password"
    wrong_password.write_text(WRONG_PASSWORD + "\n")
    spoiled = {
        "password": (
            {"ONCEPIPE_KAFKA_SASL_PASSWORD_FILE": str(wrong_password)},
            "Kafka refused the login (_AUTHENTICATION: ",
        ),
        "CA": (
            {"ONCEPIPE_KAFKA_SSL_CA_FILE": str(_other_ca(tmp_path / "other-ca.pem"))},
            "the TLS handshake with Kafka failed (_SSL: ",
        ),
    }
    base = {**secured_kafka.env("admin"), "ONCEPIPE_DATABASE_URL": services.database_url}
    runs = [
        (args, {**base, **change}) for args in COMMANDS.values() for change, _ in spoiled.values()
    ]
    outcomes = run_all(runs)
    secrets = [WRONG_PASSWORD, *secured_kafka.passwords()]
    expected = [start for _ in COMMANDS for _, start in spoiled.values()]
    for outcome, start in zip(outcomes, expected, strict=True):
        _assert_refused(outcome, start, secrets)


def test_the_right_password_and_ca_log_in(secured_kafka: SecuredKafka, services: Services) -> None:
    secured_kafka.grant(["sec.start.ok"], "sec-start")
    env = {**secured_kafka.env("admin"), "ONCEPIPE_DATABASE_URL": services.database_url}
    (outcome,) = run_all([(["topics", "create", "--topic", "sec.start.ok", "--json"], env)])
    assert outcome.code == 0, outcome
    for secret in secured_kafka.passwords():
        assert secret not in outcome.stdout + outcome.stderr


def test_consume_without_the_acls_to_read_stops_at_start_naming_what_is_missing(
    secured_kafka: SecuredKafka, services: Services
) -> None:
    secured_kafka.grant(["sec.acl"], "sec-acl")
    database = {"ONCEPIPE_DATABASE_URL": services.database_url}
    admin = {**secured_kafka.env("admin"), **database}
    (created,) = run_all([(["topics", "create", "--topic", "sec.acl"], admin)])
    assert created.code == 0, created
    consume = ["consume", "--handler", "clicks", "--group"]
    runs = [
        # The relay's principal may write events, never read them nor join a group.
        ([*consume, "sec-acl-1", "--topic", "sec.acl"], {**secured_kafka.env("relay"), **database}),
        # The consumer's own principal, on a topic it was not granted.
        (
            [*consume, "sec-acl-2", "--topic", "sec.acl", "--topic", "sec.other"],
            {**secured_kafka.env("consumer"), **database},
        ),
    ]
    as_relay, off_grant = run_all(runs)
    for outcome in (as_relay, off_grant):
        assert outcome.code == 2, outcome
        assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr
        for secret in secured_kafka.passwords():
            assert secret not in outcome.stdout + outcome.stderr
    assert as_relay.first_line.startswith(
        "oncepipe: Kafka user relay may not consume: it lacks READ on topic sec.acl, "
        "READ on group sec-acl-1; ask the cluster's administrator"
    ), as_relay.first_line
    assert "Kafka user consumer may not consume: it lacks READ on topic sec.other;" in (
        off_grant.first_line
    ), off_grant.first_line
