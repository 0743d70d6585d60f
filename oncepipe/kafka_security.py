"""The Kafka security settings' rules: secrets read from files, combinations refused at load.

Secrets (the SASL password, the TLS key's password, the OAUTHBEARER client secret) never come
from argv nor inline from the environment: the environment is inherited by every child process
and readable in ``/proc/<pid>/environ``. Each comes from its ``*_FILE`` variable or, failing
that, from a file of the secrets directory (``ONCEPIPE_KAFKA_SECRETS_DIR``) named like the
variable, lowercase (``oncepipe_kafka_sasl_password``), as Docker and Kubernetes mount them.

Every refusal is one line naming the variable and the fix; the ``Settings`` model raises it as
a validation error, which the CLI reports with exit code 2.

Public names: ``SECRETS``, ``SASL_MECHANISMS``, ``read_secret_files``, ``security_problem``,
``raw_secret_values``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

__all__ = [
    "SASL_MECHANISMS",
    "SECRETS",
    "raw_secret_values",
    "read_secret_files",
    "security_problem",
]

PREFIX = "ONCEPIPE_"
# The secret fields, each read from the file its ``<FIELD>_FILE`` variable names.
SECRETS = ("kafka_sasl_password", "kafka_ssl_key_password", "kafka_oauthbearer_client_secret")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", "OAUTHBEARER")
_TLS = ("SSL", "SASL_SSL")
_SASL = ("SASL_SSL", "SASL_PLAINTEXT")


def _variable(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


def _read(path: str | os.PathLike[str], variable: str, what: str) -> str:
    """The secret in ``path``, without its trailing line break; one line naming ``variable``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(
            f"{variable}: cannot read {os.fspath(path)} ({reason}); "
            f"point it at a readable file holding the {what}"
        ) from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{variable}: {os.fspath(path)} is empty; write the {what} into it")
    return secret


def _inline(environ: Mapping[str, str], field: str) -> bool:
    name = _variable(field)
    return any(key.upper() == name for key in environ)


def read_secret_files(data: MutableMapping[str, Any], environ: Mapping[str, str]) -> None:
    """Fill each secret field of ``data`` (the settings' raw input) from its file.

    Raises ``ValueError`` (one line) for a secret set inline in the environment, a secret given
    both by ``*_FILE`` and in-process, or a file that cannot be read.
    """
    secrets_dir = data.get("kafka_secrets_dir")
    for field in SECRETS:
        variable, what = _variable(field), field.removeprefix("kafka_").replace("_", " ")
        if _inline(environ, field):
            raise ValueError(
                f"{variable} is refused: a secret in the environment reaches every child "
                f"process; write it to a file and set {variable}_FILE to its path "
                f"(or put it in ONCEPIPE_KAFKA_SECRETS_DIR)"
            )
        path = data.get(f"{field}_file")
        if path:
            if data.get(field) is not None:
                raise ValueError(f"{variable} is given twice: set {variable}_FILE alone")
            data[field] = _read(path, f"{variable}_FILE", what)
        elif secrets_dir and data.get(field) is None:
            candidate = Path(secrets_dir) / variable.lower()
            if candidate.exists():
                data[field] = _read(candidate, "ONCEPIPE_KAFKA_SECRETS_DIR", what)


def raw_secret_values(environ: Mapping[str, str]) -> list[str]:
    """The Kafka secrets the environment points at, read best effort, for redacting errors.

    For reporting a failure when the settings themselves may be what failed to load.
    """
    values = []
    secrets_dir = environ.get("ONCEPIPE_KAFKA_SECRETS_DIR")
    for field in SECRETS:
        variable = _variable(field)
        candidates = [environ.get(f"{variable}_FILE"), environ.get(variable)]
        if secrets_dir:
            candidates.append(str(Path(secrets_dir) / variable.lower()))
        for index, candidate in enumerate(candidates):
            if not candidate:
                continue
            if index == 1:
                values.append(candidate)
                continue
            try:
                values.append(Path(candidate).read_text(encoding="utf-8").rstrip("\r\n"))
            except (OSError, UnicodeError):
                continue
    return [value for value in values if value]


def security_problem(values: Mapping[str, Any]) -> str | None:
    """The first refused combination of the Kafka security settings, as one line, or None."""
    protocol = values["kafka_security_protocol"]
    mechanism = values["kafka_sasl_mechanism"]
    checks = (_protocol_problem, _sasl_problem, _tls_problem, _pem_problem, _oauth_problem)
    for check in checks:
        problem = check(values, protocol, mechanism)
        if problem:
            return problem
    return None


def _protocol_problem(values: Mapping[str, Any], protocol: str, _mechanism: str | None) -> str:
    if protocol == "SASL_PLAINTEXT" and not values["kafka_allow_unencrypted_sasl"]:
        return (
            "ONCEPIPE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT sends credentials unencrypted: use "
            "SASL_SSL, or set ONCEPIPE_KAFKA_ALLOW_UNENCRYPTED_SASL=true to accept that"
        )
    return ""


def _sasl_problem(values: Mapping[str, Any], protocol: str, mechanism: str | None) -> str:
    if protocol not in _SASL:
        return _no_sasl_problem(values, protocol, mechanism)
    if mechanism is None:
        return (
            f"ONCEPIPE_KAFKA_SASL_MECHANISM is required with {protocol}: set one of "
            + ", ".join(SASL_MECHANISMS)
        )
    if mechanism == "OAUTHBEARER":
        login = values.get("kafka_sasl_username") or values.get("kafka_sasl_password")
        return (
            "ONCEPIPE_KAFKA_SASL_USERNAME and the password are not used with OAUTHBEARER: "
            "unset them and set the ONCEPIPE_KAFKA_OAUTHBEARER_* variables"
            if login
            else ""
        )
    if not values.get("kafka_sasl_username"):
        return (
            f"ONCEPIPE_KAFKA_SASL_USERNAME is required with ONCEPIPE_KAFKA_SASL_MECHANISM="
            f"{mechanism}: set it to the Kafka user name (the API key for Confluent Cloud)"
        )
    if values.get("kafka_sasl_password") is None:
        return (
            f"ONCEPIPE_KAFKA_SASL_PASSWORD_FILE is required with ONCEPIPE_KAFKA_SASL_MECHANISM="
            f"{mechanism}: point it at a file holding the password"
        )
    return ""


def _no_sasl_problem(values: Mapping[str, Any], protocol: str, mechanism: str | None) -> str:
    if mechanism is not None:
        return (
            f"ONCEPIPE_KAFKA_SASL_MECHANISM needs a SASL protocol: set "
            f"ONCEPIPE_KAFKA_SECURITY_PROTOCOL=SASL_SSL (it is {protocol})"
        )
    given = [f for f in ("kafka_sasl_username", "kafka_sasl_password") if values.get(f)]
    if given:
        return (
            f"{_variable(given[0])} is set but ONCEPIPE_KAFKA_SECURITY_PROTOCOL={protocol} "
            "does not log in: set it to SASL_SSL and choose ONCEPIPE_KAFKA_SASL_MECHANISM"
        )
    return ""


def _tls_problem(values: Mapping[str, Any], protocol: str, _mechanism: str | None) -> str:
    tls_fields = ("kafka_ssl_ca_file", "kafka_ssl_certificate_file", "kafka_ssl_key_file")
    given = [f for f in (*tls_fields, "kafka_ssl_key_password") if values.get(f)]
    if protocol not in _TLS:
        if given or not values["kafka_ssl_verify_hostname"]:
            name = _variable(given[0]) if given else "ONCEPIPE_KAFKA_SSL_VERIFY_HOSTNAME"
            return (
                f"{name} is set but ONCEPIPE_KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS: "
                "set it to SSL or SASL_SSL, or unset the TLS variables"
            )
        return ""
    certificate, key = values.get("kafka_ssl_certificate_file"), values.get("kafka_ssl_key_file")
    if certificate and not key:
        return (
            "ONCEPIPE_KAFKA_SSL_CERTIFICATE_FILE needs its private key: set "
            "ONCEPIPE_KAFKA_SSL_KEY_FILE (mutual TLS)"
        )
    if key and not certificate:
        return (
            "ONCEPIPE_KAFKA_SSL_KEY_FILE needs its certificate: set "
            "ONCEPIPE_KAFKA_SSL_CERTIFICATE_FILE (mutual TLS)"
        )
    if values.get("kafka_ssl_key_password") is not None and not key:
        return (
            "ONCEPIPE_KAFKA_SSL_KEY_PASSWORD_FILE is set without a key: set "
            "ONCEPIPE_KAFKA_SSL_KEY_FILE and ONCEPIPE_KAFKA_SSL_CERTIFICATE_FILE"
        )
    return ""


def _no_password() -> str:
    return ""


def _pem_problem(values: Mapping[str, Any], protocol: str, _mechanism: str | None) -> str:
    """Load the TLS files as librdkafka will (OpenSSL, PEM): a bad file is refused at load."""
    if protocol not in _TLS:
        return ""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca = values.get("kafka_ssl_ca_file")
    if ca:
        try:
            context.load_verify_locations(cafile=os.fspath(ca))
        except ssl.SSLError as exc:
            return (
                f"ONCEPIPE_KAFKA_SSL_CA_FILE: {os.fspath(ca)} holds no PEM CA certificate "
                f"({exc.reason or exc}); point it at the CA certificate that signed the brokers'"
            )
    certificate, key = values.get("kafka_ssl_certificate_file"), values.get("kafka_ssl_key_file")
    if certificate and key:
        secret = values.get("kafka_ssl_key_password")
        try:
            context.load_cert_chain(
                os.fspath(certificate),
                os.fspath(key),
                # Never None: OpenSSL would then ask for an encrypted key's password on a tty.
                password=secret.get_secret_value() if secret is not None else _no_password,
            )
        except ssl.SSLError as exc:
            return (
                f"ONCEPIPE_KAFKA_SSL_CERTIFICATE_FILE and ONCEPIPE_KAFKA_SSL_KEY_FILE do not "
                f"load ({exc.reason or exc}): check both are PEM, that the key belongs to the "
                "certificate, and ONCEPIPE_KAFKA_SSL_KEY_PASSWORD_FILE for an encrypted key"
            )
    return ""


_OAUTH_FIELDS = (
    "kafka_oauthbearer_client_id",
    "kafka_oauthbearer_client_secret",
    "kafka_oauthbearer_token_endpoint_url",
)
_OAUTH_OPTIONAL = ("kafka_oauthbearer_scope", "kafka_oauthbearer_extensions")


def _oauth_problem(values: Mapping[str, Any], _protocol: str, mechanism: str | None) -> str:
    if mechanism != "OAUTHBEARER":
        given = [f for f in (*_OAUTH_FIELDS, *_OAUTH_OPTIONAL) if values.get(f)]
        if given:
            return (
                f"{_variable(given[0])} is set but ONCEPIPE_KAFKA_SASL_MECHANISM is not "
                "OAUTHBEARER: set it to OAUTHBEARER or unset the OAUTHBEARER variables"
            )
        return ""
    for field in _OAUTH_FIELDS:
        if values.get(field) is None or values.get(field) == "":
            name = _variable(field) + ("_FILE" if field in SECRETS else "")
            return f"{name} is required with ONCEPIPE_KAFKA_SASL_MECHANISM=OAUTHBEARER (OIDC)"
    url = str(values["kafka_oauthbearer_token_endpoint_url"])
    if not url.startswith("https://"):
        return (
            "ONCEPIPE_KAFKA_OAUTHBEARER_TOKEN_ENDPOINT_URL must be an https:// URL (the client "
            "secret is sent to it): set the identity provider's token endpoint"
        )
    return ""
