"""Kafka security settings: the librdkafka keys they become, what is refused at load, secrets.

No services: the settings are read from a patched environment and secret files in tmp_path;
the clients built from them are real confluent-kafka clients that never connect.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oncepipe import kafka
from oncepipe.errors import ConfigError
from oncepipe.kafka import connection_config, create_admin, create_consumer, create_producer
from oncepipe.settings import Settings, load_settings

PASSWORD = "Kp4ss-7c1e90-secret"  # noqa: S105 - a test secret, searched for in output
KEY_PASSWORD = "Kk3y-55aa01-secret"  # noqa: S105
CLIENT_SECRET = "Koidc-9f8e77-secret"  # noqa: S105


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write_tls_files(folder: Path) -> None:
    """A CA, a client certificate it signed and the client key encrypted with KEY_PASSWORD."""
    ca_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    (folder / "ca.pem").write_bytes(_certificate("test CA", ca_key, None))
    (folder / "client.pem").write_bytes(_certificate("client", client_key, (ca_name, ca_key)))
    (folder / "client.key").write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    (folder / "other.key").write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (folder / "not-pem.txt").write_text("not a certificate\n")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean Kafka environment, three secret files (each ending in a line break), TLS files."""
    for name in list(os.environ):
        if name.upper().startswith("ONCEPIPE_KAFKA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    for name, value in (
        ("password", PASSWORD),
        ("key-password", KEY_PASSWORD),
        ("client-secret", CLIENT_SECRET),
    ):
        (tmp_path / name).write_text(value + "\n")
    _write_tls_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _set(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"ONCEPIPE_KAFKA_{name.upper()}", value)


SCRAM = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "relay",
    "sasl_password_file": "password",
    "ssl_ca_file": "ca.pem",
}
CONFLUENT_CLOUD = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "PLAIN",
    "sasl_username": "APIKEY123",
    "sasl_password_file": "password",
}
MUTUAL_TLS = {
    "security_protocol": "SSL",
    "ssl_ca_file": "ca.pem",
    "ssl_certificate_file": "client.pem",
    "ssl_key_file": "client.key",
    "ssl_key_password_file": "key-password",
}
OIDC = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "OAUTHBEARER",
    "oauthbearer_client_id": "oncepipe-relay",
    "oauthbearer_client_secret_file": "client-secret",
    "oauthbearer_token_endpoint_url": "https://idp.example/oauth2/token",
    "oauthbearer_scope": "kafka",
    "oauthbearer_extensions": "logicalCluster=lkc-1,identityPoolId=pool-1",
}


def _keys(config: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in config.items() if k not in {"logger", "bootstrap.servers"}}


def test_plaintext_adds_no_security_key(env: pytest.MonkeyPatch) -> None:
    assert _keys(connection_config(load_settings())) == {}


def test_scram_over_tls_becomes_librdkafka_keys(env: pytest.MonkeyPatch) -> None:
    _set(env, **SCRAM)
    assert _keys(connection_config(load_settings())) == {
        "security.protocol": "SASL_SSL",
        "enable.ssl.certificate.verification": "true",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": "ca.pem",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "relay",
        "sasl.password": PASSWORD,
    }


def test_confluent_cloud_plain_uses_the_system_ca_store(env: pytest.MonkeyPatch) -> None:
    _set(env, **CONFLUENT_CLOUD)
    config = _keys(connection_config(load_settings()))
    assert config["sasl.mechanism"] == "PLAIN"
    assert config["sasl.username"] == "APIKEY123"
    assert config["sasl.password"] == PASSWORD
    assert "ssl.ca.location" not in config
    assert config["ssl.endpoint.identification.algorithm"] == "https"


def test_mutual_tls_becomes_librdkafka_keys(env: pytest.MonkeyPatch) -> None:
    _set(env, **MUTUAL_TLS)
    config = _keys(connection_config(load_settings()))
    assert config == {
        "security.protocol": "SSL",
        "enable.ssl.certificate.verification": "true",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": "ca.pem",
        "ssl.certificate.location": "client.pem",
        "ssl.key.location": "client.key",
        "ssl.key.password": KEY_PASSWORD,
    }


def test_oauthbearer_oidc_becomes_librdkafka_keys(env: pytest.MonkeyPatch) -> None:
    _set(env, **OIDC)
    config = _keys(connection_config(load_settings()))
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    assert config["sasl.oauthbearer.method"] == "oidc"
    assert config["sasl.oauthbearer.client.id"] == "oncepipe-relay"
    assert config["sasl.oauthbearer.client.secret"] == CLIENT_SECRET
    assert config["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example/oauth2/token"
    assert config["sasl.oauthbearer.scope"] == "kafka"
    assert config["sasl.oauthbearer.extensions"] == "logicalCluster=lkc-1,identityPoolId=pool-1"
    assert "sasl.username" not in config


@pytest.mark.parametrize("mode", [SCRAM, CONFLUENT_CLOUD, MUTUAL_TLS, OIDC])
def test_librdkafka_accepts_every_mode_for_every_client(
    env: pytest.MonkeyPatch, mode: dict[str, str]
) -> None:
    _set(env, **mode)
    settings = load_settings()
    # Building the clients validates every key (librdkafka refuses unknown or unsupported ones:
    # OIDC needs a build with libcurl, SCRAM one with SSL). Nothing connects.
    create_producer(settings).flush(0)
    create_consumer(settings, "g").close()
    create_admin(settings)


def test_turning_host_name_verification_off_is_logged_once(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _set(env, **SCRAM, ssl_verify_hostname="false")
    env.setattr(kafka, "_warned_hostname", False)
    settings = load_settings()
    with caplog.at_level(logging.WARNING, logger="oncepipe.kafka"):
        configs = [connection_config(settings) for _ in range(3)]
    assert all(c["ssl.endpoint.identification.algorithm"] == "none" for c in configs)
    assert all(c["enable.ssl.certificate.verification"] == "true" for c in configs)
    warnings = [r for r in caplog.records if "VERIFY_HOSTNAME=false" in r.getMessage()]
    assert len(warnings) == 1


REFUSED = [
    ({"security_protocol": "SASL_SSL"}, "ONCEPIPE_KAFKA_SASL_MECHANISM is required"),
    (
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"},
        "ONCEPIPE_KAFKA_SASL_MECHANISM: Input should be 'SCRAM-SHA-512'",
    ),
    (
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},
        "ONCEPIPE_KAFKA_SASL_USERNAME is required",
    ),
    (
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
        "ONCEPIPE_KAFKA_SASL_PASSWORD_FILE is required",
    ),
    ({"security_protocol": "TLS"}, "ONCEPIPE_KAFKA_SECURITY_PROTOCOL: Input should be"),
    (
        {**CONFLUENT_CLOUD, "security_protocol": "SASL_PLAINTEXT"},
        "ONCEPIPE_KAFKA_ALLOW_UNENCRYPTED_SASL=true",
    ),
    ({"sasl_mechanism": "PLAIN"}, "ONCEPIPE_KAFKA_SASL_MECHANISM needs a SASL protocol"),
    ({"sasl_username": "u"}, "ONCEPIPE_KAFKA_SASL_USERNAME is set but"),
    ({"ssl_ca_file": "ca.pem"}, "ONCEPIPE_KAFKA_SSL_CA_FILE is set but"),
    ({"ssl_verify_hostname": "false"}, "ONCEPIPE_KAFKA_SSL_VERIFY_HOSTNAME is set but"),
    (
        {"security_protocol": "SSL", "ssl_certificate_file": "client.pem"},
        "ONCEPIPE_KAFKA_SSL_CERTIFICATE_FILE needs its private key",
    ),
    (
        {"security_protocol": "SSL", "ssl_key_file": "client.key"},
        "ONCEPIPE_KAFKA_SSL_KEY_FILE needs its certificate",
    ),
    (
        {"security_protocol": "SSL", "ssl_key_password_file": "key-password"},
        "ONCEPIPE_KAFKA_SSL_KEY_PASSWORD_FILE is set without a key",
    ),
    (
        {"security_protocol": "SSL", "ssl_ca_file": "missing.pem"},
        "ONCEPIPE_KAFKA_SSL_CA_FILE: cannot read missing.pem",
    ),
    (
        {"security_protocol": "SSL", "ssl_ca_file": "not-pem.txt"},
        "ONCEPIPE_KAFKA_SSL_CA_FILE: not-pem.txt holds no PEM CA certificate",
    ),
    (
        {**MUTUAL_TLS, "ssl_key_password_file": "password"},
        "ONCEPIPE_KAFKA_SSL_CERTIFICATE_FILE and ONCEPIPE_KAFKA_SSL_KEY_FILE do not load",
    ),
    (
        {k: v for k, v in MUTUAL_TLS.items() if k != "ssl_key_password_file"},
        "ONCEPIPE_KAFKA_SSL_KEY_PASSWORD_FILE for an encrypted key",
    ),
    (
        {**MUTUAL_TLS, "ssl_key_file": "other.key"},
        "that the key belongs to the certificate",
    ),
    ({**SCRAM, "sasl_password_file": "missing"}, "ONCEPIPE_KAFKA_SASL_PASSWORD_FILE: cannot read"),
    (
        {**OIDC, "oauthbearer_client_secret_file": ""},
        "ONCEPIPE_KAFKA_OAUTHBEARER_CLIENT_SECRET_FILE is required",
    ),
    (
        {**OIDC, "oauthbearer_token_endpoint_url": "http://idp/token"},
        "must be an https:// URL",
    ),
    ({**OIDC, "sasl_username": "u"}, "are not used with OAUTHBEARER"),
    ({**SCRAM, "oauthbearer_scope": "kafka"}, "ONCEPIPE_KAFKA_OAUTHBEARER_SCOPE is set but"),
    ({**SCRAM, "sasl_password": PASSWORD}, "ONCEPIPE_KAFKA_SASL_PASSWORD is refused"),
    ({**MUTUAL_TLS, "ssl_key_password": KEY_PASSWORD}, "ONCEPIPE_KAFKA_SSL_KEY_PASSWORD is"),
]


@pytest.mark.parametrize(("variables", "expected"), REFUSED)
def test_bad_combinations_are_refused_at_load_with_one_line(
    env: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    _set(env, **variables)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert expected in message
    assert "\n" not in message
    for secret in (PASSWORD, KEY_PASSWORD, CLIENT_SECRET):
        assert secret not in message


def test_an_empty_secret_file_is_refused(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    _set(env, **{**SCRAM, "sasl_password_file": "empty"})
    with pytest.raises(ConfigError, match="ONCEPIPE_KAFKA_SASL_PASSWORD_FILE: empty is empty"):
        load_settings()


def test_secrets_come_from_the_secrets_directory(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "oncepipe_kafka_sasl_password").write_text(PASSWORD + "\n")
    variables = {k: v for k, v in SCRAM.items() if k != "sasl_password_file"}
    _set(env, **variables, secrets_dir=str(secrets))
    settings = load_settings()
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD


def test_a_file_variable_wins_over_the_secrets_directory(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "oncepipe_kafka_sasl_password").write_text("from-the-directory")
    _set(env, **SCRAM, secrets_dir=str(secrets))
    settings = load_settings()
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD


@pytest.mark.parametrize("mode", [SCRAM, MUTUAL_TLS, OIDC])
def test_secrets_are_masked_and_listed_for_redaction(
    env: pytest.MonkeyPatch, mode: dict[str, str]
) -> None:
    _set(env, **mode)
    settings = load_settings()
    shown = repr(settings) + str(settings.masked()) + str(settings.kafka_environment())
    for secret in (PASSWORD, KEY_PASSWORD, CLIENT_SECRET):
        assert secret not in shown
    held = {s.get_secret_value() for s in (
        settings.kafka_sasl_password,
        settings.kafka_ssl_key_password,
        settings.kafka_oauthbearer_client_secret,
    ) if s is not None}  # fmt: skip
    assert held
    assert held <= set(settings.secrets())


def test_child_processes_get_the_kafka_settings_with_secrets_as_paths(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _set(env, **SCRAM, ssl_verify_hostname="false")
    child = load_settings().kafka_environment()
    assert child["ONCEPIPE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert child["ONCEPIPE_KAFKA_SASL_PASSWORD_FILE"] == str(tmp_path / "password")
    assert child["ONCEPIPE_KAFKA_SSL_VERIFY_HOSTNAME"] == "false"
    assert "ONCEPIPE_KAFKA_SASL_PASSWORD" not in child
    # The child reads the same settings back from that environment alone.
    for name in list(os.environ):
        if name.startswith("ONCEPIPE_KAFKA_"):
            env.delenv(name)
    for name, value in child.items():
        env.setenv(name, value)
    assert connection_config(load_settings()) == connection_config(Settings())


def test_in_process_secrets_need_no_file(env: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr(PASSWORD),
    )
    assert connection_config(settings)["sasl.password"] == PASSWORD


class _BenchEnv:
    """What the benchmarks' raw clients read of their environment: the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def test_the_benchmarks_raw_clients_take_the_security_settings(
    env: pytest.MonkeyPatch,
) -> None:
    from bench import consume, raw

    _set(env, **SCRAM)
    bench_env: Any = _BenchEnv(load_settings())
    expected = _keys(connection_config(bench_env.settings))
    for idempotent in (True, False):
        config = raw.raw_config(bench_env, idempotent=idempotent)
        assert {k: config[k] for k in expected} == expected
    seen: list[dict[str, Any]] = []

    class _Consumer:
        def __init__(self, config: dict[str, Any]) -> None:
            seen.append(config)

        def assign(self, _partitions: object) -> None:
            return None

    env.setattr(consume, "Consumer", _Consumer)
    consume._raw_consumer(bench_env, "t")
    assert {k: seen[0][k] for k in expected} == expected
    assert seen[0]["sasl.password"] == PASSWORD


def test_the_demos_children_inherit_the_security_settings_without_secrets(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from demo.processes import Workers

    _set(env, **SCRAM)
    settings = load_settings()
    for name in list(os.environ):  # the settings alone, not the parent's environment, count
        if name.startswith("ONCEPIPE_KAFKA_"):
            env.delenv(name)
    children = Workers(settings, tmp_path)._processes.env
    assert children is not None
    assert children["ONCEPIPE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert children["ONCEPIPE_KAFKA_SASL_USERNAME"] == "relay"
    assert children["ONCEPIPE_KAFKA_SASL_PASSWORD_FILE"] == str(tmp_path / "password")
    assert children["ONCEPIPE_KAFKA_SSL_CA_FILE"] == str(tmp_path / "ca.pem")
    assert PASSWORD not in "".join(children.values())
