"""The secured local PostgreSQL's key material: a CA, the server's certificate, role passwords.

``ONCEPIPE_INFRA_POSTGRES_SECURITY=scram-tls`` (``make up PG_SECURITY=scram-tls``) accepts TCP
connections only over TLS (``hostssl``) with ``scram-sha-256`` passwords; the superuser keeps
trust on the cluster's own Unix socket, which only infra uses. Generated at the first start
under the cluster's state folder and kept:

- ``security/ca.pem``: the CA clients verify the server with (``sslmode=verify-full``,
  ``sslrootcert``); the CA and certificate come from the secured Kafka broker's generator
  (``infra.kafka.security``), so the server is ``localhost`` and ``127.0.0.1``.
- ``tls/server.crt`` and ``tls/server.key`` (0600, the server's account): what PostgreSQL loads.
- ``security/credentials/<role>.password`` and ``<role>.pgpass`` (libpq's passfile format,
  ``PGPASSFILE``), 0600. Passwords reach the server as SCRAM verifiers on psql's standard
  input, never on a command line.

Public names: ``SECURITY_MODES``, ``COMPONENT_ROLES``, ``SUPERUSER_COMPONENT``,
``PostgresSecurity``, ``scram_verifier``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from infra.kafka.security import BrokerSecurity, write_private

__all__ = [
    "COMPONENT_ROLES",
    "SECURITY_MODES",
    "SUPERUSER_COMPONENT",
    "PostgresSecurity",
    "scram_verifier",
]

SECURITY_MODES = ("plaintext", "scram-tls")
SUPERUSER_COMPONENT = "admin"
COMPONENT_ROLES: dict[str, str] = {
    "migrator": "oncepipe_migrator",
    "relay": "oncepipe_relay",
    "producer": "oncepipe_producer",
    "consumer": "oncepipe_consumer",
    "replay": "oncepipe_dlq",
    "ingest": "oncepipe_ingest",
}
"""Component (``make env PRINCIPAL=...``) -> its login role, created by migration 0014 too."""
ITERATIONS = 4096


def scram_verifier(password: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    """The ``SCRAM-SHA-256$...`` verifier PostgreSQL stores for ``password`` (RFC 5802/7677)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


@dataclass(frozen=True)
class PostgresSecurity:
    """The key material of one secured cluster, under ``home``."""

    home: Path
    superuser: str

    @property
    def folder(self) -> Path:
        """CA, its key and the credentials."""
        return self.home / "security"

    @property
    def tls_folder(self) -> Path:
        """The server's certificate and key, readable by the server's account only."""
        return self.home / "tls"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients trust."""
        return self.folder / "ca.pem"

    @property
    def cert_file(self) -> Path:
        """The server's certificate chain."""
        return self.tls_folder / "server.crt"

    @property
    def key_file(self) -> Path:
        """The server's private key (0600)."""
        return self.tls_folder / "server.key"

    def role(self, component: str) -> str:
        """The login role of ``component`` (``admin``: the superuser)."""
        return self.superuser if component == SUPERUSER_COMPONENT else COMPONENT_ROLES[component]

    @property
    def roles(self) -> list[str]:
        """Every role with a password: the superuser and each component's."""
        return [self.superuser, *COMPONENT_ROLES.values()]

    def password_file(self, role: str) -> Path:
        """Where ``role``'s generated password lives (0600)."""
        return self.folder / "credentials" / f"{role}.password"

    def passfile(self, role: str) -> Path:
        """``role``'s libpq passfile (``PGPASSFILE``), 0600."""
        return self.folder / "credentials" / f"{role}.pgpass"

    def password(self, role: str) -> str:
        """``role``'s password, read from its file."""
        return self.password_file(role).read_text().strip()

    def ensure(self) -> None:
        """Generate what is missing: CA and certificate, the server's copy, passwords."""
        broker = BrokerSecurity(self.folder)
        broker.ensure_certificates()
        if not (self.cert_file.exists() and self.key_file.exists()):
            blocks = broker.keystore_file.read_text()
            end = "-----END PRIVATE KEY-----\n"
            key, _, chain = blocks.partition(end)
            write_private(self.key_file, (key + end).encode())
            write_private(self.cert_file, chain.encode())
        for role in self.roles:
            path = self.password_file(role)
            if not path.exists():
                write_private(path, secrets.token_urlsafe(24).encode())
            if not self.passfile(role).exists():
                secret = self.password(role)
                lines = f"127.0.0.1:*:*:{role}:{secret}\nlocalhost:*:*:{role}:{secret}\n"
                write_private(self.passfile(role), lines.encode())

    def roles_sql(self) -> str:
        """SQL creating each login role when missing and setting its password (a verifier).

        For psql's standard input only: the verifier is enough to impersonate nobody, but
        it is still kept off command lines.
        """
        statements = []
        for role in self.roles:
            verifier = scram_verifier(self.password(role), secrets.token_bytes(16))
            statements.append(
                "DO $$ BEGIN "
                f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                f'CREATE ROLE "{role}" LOGIN; END IF; END $$;\n'
                f"ALTER ROLE \"{role}\" LOGIN PASSWORD '{verifier}';\n"
            )
        return "".join(statements)

    def server_options(self) -> list[str]:
        """``postgres -c`` settings for TLS and SCRAM."""
        return [
            "ssl=on",
            f"ssl_cert_file={self.cert_file}",
            f"ssl_key_file={self.key_file}",
            "ssl_min_protocol_version=TLSv1.2",
            "password_encryption=scram-sha-256",
        ]

    def client_url(self, role: str, port: int, database: str) -> str:
        """A libpq URL for ``role``: TLS with the server's name verified; no password in it."""
        return (
            f"postgresql://{role}@127.0.0.1:{port}/{database}"
            f"?sslmode=verify-full&sslrootcert={self.ca_file}"
        )


HBA_PLAINTEXT = """\
# oncepipe native service (plaintext): trust on loopback and the socket
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
"""
HBA_SECURED = """\
# oncepipe native service (scram-tls): TCP only over TLS, with scram-sha-256 passwords;
# the superuser keeps trust on the cluster's own socket folder, which only infra uses.
local all {superuser} trust
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
"""
