"""The PostgreSQL connection string: check it, mask it, keep its secrets out of every text.

Parsing is libpq's own (``psycopg.conninfo``), so every form psycopg accepts is understood: a
``postgresql://user:pass@host/db`` URL, ``?password=`` query parameters and ``key=value``
pairs. psycopg's parse errors quote the fragment they choke on (a password, often), so they are
never passed on: a malformed string gets a message of ours.

Public names: ``SECRET_KEYS``, ``check_dsn``, ``mask_dsn``, ``dsn_secrets``, ``redact``,
``connection_problem``, ``pooler_problem``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from oncepipe.errors import ConfigError, DatabaseUnavailableError, OncepipeError

__all__ = [
    "SECRET_KEYS",
    "check_dsn",
    "connection_problem",
    "dsn_secrets",
    "mask_dsn",
    "pooler_problem",
    "redact",
]

SECRET_KEYS = frozenset({"password", "sslpassword"})
MASK = "***"
_VARIABLE = "ONCEPIPE_DATABASE_URL"
_URL_SCHEMES = ("postgresql://", "postgres://")
# Values libpq accepts; anything else fails at every connection attempt, so it is configuration.
_CHOICES = {
    "sslmode": {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
    "gssencmode": {"disable", "prefer", "require"},
    "target_session_attrs": {
        "any", "read-write", "read-only", "primary", "standby", "prefer-standby",
    },
    "load_balance_hosts": {"disable", "random"},
}  # fmt: skip
_INTEGERS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval")
# SQLSTATEs of a login that can never succeed as configured: bad password or role (class 28),
# unknown database (3D000).
_REFUSED_LOGIN_CLASS = "28"
_UNKNOWN_DATABASE = "3D000"
# libpq gives no SQLSTATE for a failed login, only the server's (English) FATAL text.
_REFUSED_LOGIN_TEXTS = (
    "password authentication failed",
    "authentication failed for user",
    "no pg_hba.conf entry",
    "does not exist",  # role or database
    "no password supplied",
    "not permitted to log in",
    "permission denied for database",
)


# PgBouncer's answer to a startup parameter it does not pass on (``options``, before 1.20).
_POOLER_REFUSAL = "unsupported startup parameter"


def _parse(dsn: str) -> dict[str, str]:
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        params = None
    if params is None:
        # Raised outside the handler so that no context, and no traceback, carries psycopg's
        # message: it quotes the fragment it could not read (a password, often).
        raise ConfigError(
            f"{_VARIABLE} is not a valid PostgreSQL connection string (use "
            "postgresql://user:password@host:port/dbname or key=value pairs such as "
            "'host=h port=5432 dbname=d user=u'); fix its syntax"
        )
    return {key: str(value) for key, value in params.items()}


def check_dsn(dsn: str) -> dict[str, str]:
    """The connection string's parameters; ``ConfigError`` when no connection could ever work.

    Checks the syntax and the values libpq would refuse at each attempt (port, sslmode, ...),
    without connecting. The message never contains the string or a fragment of it.
    """
    params = _parse(dsn)
    for port in params.get("port", "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(
                f"{_VARIABLE}: the port is not a number from 1 to 65535; fix the port"
            )
    for key, allowed in _CHOICES.items():
        if key in params and params[key] not in allowed:
            raise ConfigError(
                f"{_VARIABLE}: {key} must be one of {', '.join(sorted(allowed))}; fix {key}"
            )
    for key in _INTEGERS:
        if key in params and not params[key].lstrip("-").isdigit():
            raise ConfigError(f"{_VARIABLE}: {key} must be a whole number; fix {key}")
    return params


def dsn_secrets(dsn: str) -> list[str]:
    """The secret values inside ``dsn`` (passwords), in the forms they may appear in text."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # Unparseable: the whole string, and the fragments that may hold a password
        # (``user:password`` and ``...password=value``), as psycopg quotes them.
        return sorted({dsn, *_fragments(dsn)} - {""}, key=len, reverse=True)
    found: list[str] = []
    for key in SECRET_KEYS:
        value = str(params.get(key) or "")
        if value:
            found += [value, quote(value, safe=""), quote(value)]
    return sorted(set(found), key=len, reverse=True)


def _fragments(dsn: str) -> list[str]:
    found = []
    for token in dsn.split():
        key, equals, value = token.partition("=")
        if equals and "password" in key:
            found += [value, value.strip("'")]
        elif ":" in token:
            found.append(token)
    return found


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its passwords replaced by ``***``, in the form it was given."""
    params = _parse(dsn)
    if dsn.startswith(_URL_SCHEMES):
        masked = _mask_url(dsn)
        if masked is not None:
            return masked
    hidden = {key: MASK for key in SECRET_KEYS if key in params}
    return make_conninfo(dsn, **hidden) if hidden else dsn


def _mask_url(url: str) -> str | None:
    """The URL with passwords in its user info and query masked; None if it will not split."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    user_info, at, host = parts.netloc.rpartition("@")
    if at and ":" in user_info:
        user_info = f"{user_info.split(':', 1)[0]}:{MASK}"
    query = [
        (key, MASK if key in SECRET_KEYS else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = f"{user_info}{at}{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))


def connection_problem(exc: psycopg.Error, secrets: Iterable[str] = ()) -> OncepipeError:
    """An oncepipe error for a failed PostgreSQL connection, saying whether to wait or fix.

    ``ConfigError`` when the settings can never connect (refused login, unknown database, a
    value libpq refuses), ``DatabaseUnavailableError`` when the server is down or unreachable
    (an outage that a daemon waits out).
    """
    if isinstance(exc, psycopg.ProgrammingError):  # the string itself: quoted by psycopg
        return ConfigError(f"{_VARIABLE} is not a valid PostgreSQL connection string; fix it")
    pooler = pooler_problem(exc)
    if pooler is not None:
        return pooler
    lines = str(exc).strip().splitlines()
    first = redact(" ".join(lines[0].split()) if lines else type(exc).__name__, secrets)
    sqlstate = exc.sqlstate or ""
    if (
        sqlstate.startswith(_REFUSED_LOGIN_CLASS)
        or sqlstate == _UNKNOWN_DATABASE
        or any(text in first for text in _REFUSED_LOGIN_TEXTS)
    ):
        return ConfigError(
            f"PostgreSQL refused the login: {first}; fix the user, password or "
            f"database in {_VARIABLE}"
        )
    if first.startswith("connection is bad: invalid"):  # libpq refused a value before connecting
        return ConfigError(f"{_VARIABLE}: {first.removeprefix('connection is bad: ')}; fix it")
    return DatabaseUnavailableError(
        f"cannot connect to PostgreSQL: {first}; check that the server runs (make up) and "
        f"the host and port in {_VARIABLE} (oncepipe config)"
    )


def pooler_problem(exc: psycopg.Error) -> ConfigError | None:
    """A ``ConfigError`` when a PgBouncer refused the session options of a direct connection."""
    if _POOLER_REFUSAL not in str(exc):
        return None
    return ConfigError(
        f"{_VARIABLE} leads to a PgBouncer, which refuses the session options sent to "
        "PostgreSQL itself: set ONCEPIPE_DATABASE_POOLER=transaction (or session, as its "
        "pool_mode says)"
    )
