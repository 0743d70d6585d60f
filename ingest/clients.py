"""Who may post: clients with a hashed API key, the event types granted to each, their rate.

The clients file (``ONCEPIPE_INGEST_CLIENTS_FILE``) is JSON and holds no secret::

    {"clients": [{"name": "web", "key_sha256": "<hex>", "event_types": ["ClickEvent"],
                  "rate_per_s": 100, "burst": 200}]}

``key_sha256`` is the SHA-256 of the API key (``oncepipe ingest new-key`` makes a key and its
entry). A plain hash suits API keys: they are 256-bit random tokens, so a slow password hash
would add latency to every request and no protection. ``event_types`` ``["*"]`` grants every
registered type. The client's ``name`` is its dedupe namespace: event ids derive from it.

Public names: ``Client``, ``Clients``, ``load_clients``, ``hash_key``, ``new_key``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oncepipe.errors import ConfigError

__all__ = ["Client", "Clients", "hash_key", "load_clients", "new_key"]


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key, as the clients file stores it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


class _ClientEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    event_types: list[str] = Field(min_length=1)
    rate_per_s: float | None = Field(None, gt=0)
    burst: int | None = Field(None, ge=1)


class _ClientsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clients: list[_ClientEntry]


@dataclass(frozen=True, slots=True)
class Client:
    """One authenticated caller."""

    name: str
    event_types: frozenset[str]
    rate_per_s: float | None
    burst: int | None

    def may_post(self, event_type: str) -> bool:
        """True when the client is granted ``event_type``."""
        return "*" in self.event_types or event_type in self.event_types


class Clients:
    """The clients by the hash of their key."""

    def __init__(self, entries: dict[str, Client]) -> None:
        self._by_hash = entries

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, authorization: str | None) -> Client | None:
        """The client whose key ``Authorization: Bearer <key>`` carries, or None."""
        if not authorization:
            return None
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        # Looked up by the digest: timing reveals nothing about a key, only about its hash.
        return self._by_hash.get(hash_key(key.strip()))


def load_clients(path: Path | None) -> Clients:
    """Read the clients file; a missing or malformed file is a ``ConfigError``."""
    if path is None:
        raise ConfigError(
            "no clients: set ONCEPIPE_INGEST_CLIENTS_FILE to a JSON file of clients"
            " (oncepipe ingest new-key --client NAME prints an entry)"
        )
    try:
        parsed = _ClientsFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigError(f"ONCEPIPE_INGEST_CLIENTS_FILE {path}: cannot read it ({exc})") from exc
    except (ValueError, ValidationError) as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(
            f"ONCEPIPE_INGEST_CLIENTS_FILE {path}: not a valid clients file "
            f"({'; '.join(first[:3])}); see README 'HTTP ingest'"
        ) from exc
    names = [entry.name for entry in parsed.clients]
    if len(set(names)) != len(names):
        raise ConfigError(f"ONCEPIPE_INGEST_CLIENTS_FILE {path}: a client name appears twice")
    entries = {
        entry.key_sha256: Client(
            entry.name, frozenset(entry.event_types), entry.rate_per_s, entry.burst
        )
        for entry in parsed.clients
    }
    if len(entries) != len(names):
        raise ConfigError(f"ONCEPIPE_INGEST_CLIENTS_FILE {path}: two clients share one key")
    return Clients(entries)
