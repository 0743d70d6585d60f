"""Who is asking: users of a password file (scrypt hashes), or a trusted proxy's header.

Public names: ``hash_password``, ``load_users``, ``verify``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from oncepipe.errors import ConfigError

__all__ = ["hash_password", "load_users", "verify"]

# scrypt cost: ~50 ms and 16 MiB per check, which slows guessing without slowing a login.
_N, _R, _P = 2**14, 8, 1


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex) of ``password``, for the password file."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify(password: str, stored: str) -> bool:
    """True when ``password`` matches a ``hash_password`` string."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        found = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(found, bytes.fromhex(digest))


def load_users(path: Path) -> dict[str, str]:
    """``{name: hash}`` of a password file: ``name:hash`` lines, ``#`` comments."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"password file {path}: {exc.strerror}") from None
    users: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not name or not stored.startswith("scrypt$"):
            raise ConfigError(
                f"password file {path} line {number}: expected name:scrypt$...; make lines "
                "with `oncepipe console hash-password NAME`"
            )
        users[name] = stored
    if not users:
        raise ConfigError(f"password file {path} names no user; add one with hash-password")
    return users
