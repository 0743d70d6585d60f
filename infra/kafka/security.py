"""The secured local broker's key material: a CA, the broker's certificate, SCRAM principals.

``ONCEPIPE_INFRA_KAFKA_SECURITY=scram-tls`` (``make up KAFKA_SECURITY=scram-tls``) runs the
client listener as SASL_SSL with SCRAM-SHA-512. Everything here is generated at the first start
under the cluster's git-ignored state folder and kept for the next ones:

- ``security/ca.pem``: the CA certificate clients trust (``ONCEPIPE_KAFKA_SSL_CA_FILE``);
  ``ca.key`` and ``broker.pem`` (the broker's key and certificate chain) are 0600. The
  certificate names ``localhost`` and ``127.0.0.1``, so clients keep hostname verification on.
- ``security/credentials/<principal>.password``: one generated password per principal, 0600;
  clients read them through ``ONCEPIPE_KAFKA_SASL_PASSWORD_FILE``, never from argv.

SCRAM credentials reach the metadata log at format time in the salted form
(``salt=...,saltedpassword=...,iterations=...``). The salted password is itself enough to
authenticate, so the format command's arguments go through a 0600 java argument file, removed
right after: no credential reaches any process's command line.

Public names: ``SECURITY_MODES``, ``BROKER_PRINCIPAL``, ``COMPONENT_PRINCIPALS``,
``BrokerSecurity``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BROKER_PRINCIPAL",
    "COMPONENT_PRINCIPALS",
    "SECURITY_MODES",
    "BrokerSecurity",
    "write_private",
]

SECURITY_MODES = ("plaintext", "scram-tls")
BROKER_PRINCIPAL = "broker"
COMPONENT_PRINCIPALS: dict[str, str] = {
    "admin": "topics create (and describing topics and groups)",
    "relay": "the outbox relay: writes event and dead-letter topics",
    "consumer": "consumer workers: read their topics and groups",
    "replay": "dlq replay: reads .dlq topics, writes source topics",
    "producer": "the simulator and direct producers: write event topics",
}
"""Principal name -> what runs under it; their ACLs are in ``oncepipe.acls``."""

MECHANISM = "SCRAM-SHA-512"
ITERATIONS = 8192
CERT_DAYS = 825


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read, never readable in between."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)


def scram_salted(password: str, salt: bytes, iterations: int = ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802 ``Hi``): PBKDF2-HMAC-SHA-512."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


@dataclass(frozen=True)
class BrokerSecurity:
    """The key material of one secured cluster, kept in ``folder``."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients trust."""
        return self.folder / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        """The CA's private key (0600)."""
        return self.folder / "ca.key"

    @property
    def keystore_file(self) -> Path:
        """The broker's PEM key store: private key, then certificate chain (0600)."""
        return self.folder / "broker.pem"

    def password_file(self, principal: str) -> Path:
        """Where ``principal``'s generated password lives (0600)."""
        return self.folder / "credentials" / f"{principal}.password"

    @property
    def principals(self) -> list[str]:
        """Every SCRAM principal: the broker's own and each component's."""
        return [BROKER_PRINCIPAL, *COMPONENT_PRINCIPALS]

    def ensure_certificates(self) -> None:
        """Generate the CA and the certificate (``localhost``, ``127.0.0.1``) when missing."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not (self.ca_file.exists() and self.keystore_file.exists()):
            # cryptography is imported only here: plaintext services run on a bare Python.
            from infra.kafka.certificates import write_certificates  # noqa: PLC0415

            write_certificates(
                ca_file=self.ca_file, ca_key_file=self.ca_key_file, keystore_file=self.keystore_file
            )

    def ensure(self) -> None:
        """Generate what is missing: the CA and certificate, then one password per principal."""
        self.ensure_certificates()
        for principal in self.principals:
            path = self.password_file(principal)
            if not path.exists():
                write_private(path, secrets.token_urlsafe(24).encode())

    def password(self, principal: str) -> str:
        """``principal``'s password, read from its file."""
        return self.password_file(principal).read_text().strip()

    def scram_arguments(self) -> list[str]:
        """``--add-scram`` arguments for every principal, in the salted form.

        Meant for a 0600 java argument file (``format_argfile``), never for argv.
        """
        arguments = []
        for principal in self.principals:
            salt = secrets.token_bytes(24)
            salted = scram_salted(self.password(principal), salt)
            arguments += [
                "--add-scram",
                f"{MECHANISM}=[name={principal},"
                f"salt={base64.b64encode(salt).decode()},"
                f"saltedpassword={base64.b64encode(salted).decode()},"
                f"iterations={ITERATIONS}]",
            ]
        return arguments

    def write_argfile(self, path: Path, arguments: list[str]) -> None:
        """A java ``@argfile`` holding ``arguments`` (0600): the launcher reads them, no argv."""
        quoted = "".join(f"'{argument}'\n" for argument in arguments)
        write_private(path, quoted.encode())

    def server_settings(self, listener_names: list[str]) -> dict[str, str]:
        """Broker settings for SASL_SSL listeners ``listener_names`` and the authorizer.

        The broker speaks to its peers over SASL_SSL as ``User:broker``; the controller
        listener stays plaintext on loopback, where connections are ``User:ANONYMOUS``: both
        are super users, every other principal gets only what its ACLs allow.
        """
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{BROKER_PRINCIPAL}" password="{self.password(BROKER_PRINCIPAL)}";'
        )
        settings = {
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore_file),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.client.auth": "none",
            "ssl.endpoint.identification.algorithm": "https",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{BROKER_PRINCIPAL};User:ANONYMOUS",
        }
        for name in listener_names:
            settings[f"listener.name.{name.lower()}.{MECHANISM.lower()}.sasl.jaas.config"] = jaas
        return settings

    def client_env(self, principal: str) -> dict[str, str]:
        """The ``ONCEPIPE_KAFKA_*`` settings of a client running as ``principal``: paths only."""
        return {
            "ONCEPIPE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "ONCEPIPE_KAFKA_SASL_MECHANISM": MECHANISM,
            "ONCEPIPE_KAFKA_SASL_USERNAME": principal,
            "ONCEPIPE_KAFKA_SASL_PASSWORD_FILE": str(self.password_file(principal)),
            "ONCEPIPE_KAFKA_SSL_CA_FILE": str(self.ca_file),
        }

    def client_config(self, principal: str) -> dict[str, str]:
        """The librdkafka keys of ``principal`` (infra's own admin calls and tests)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": principal,
            "sasl.password": self.password(principal),
            "ssl.ca.location": str(self.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
        }
