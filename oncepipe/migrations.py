"""Versioned, forward-only SQL migrations (``oncepipe/sql/NNNN_name.sql``), applied by yoyo.

Applied migrations are recorded in the database (yoyo's ``_yoyo_migration`` table), and a
database lock keeps two workers starting at once from applying the same file twice.

Public names: ``MIGRATIONS_DIR``, ``pending_migrations``, ``apply_migrations``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import yoyo
from yoyo.backends import DatabaseBackend

from oncepipe.conninfo import check_dsn, connection_problem, dsn_secrets

__all__ = ["MIGRATIONS_DIR", "apply_migrations", "pending_migrations"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "sql"
_URL_PARTS = ("user", "password", "host", "port", "dbname")


def _yoyo_url(database_url: str) -> str:
    """A URL for yoyo, rebuilt from any form libpq accepts (URL or key=value pairs)."""
    params = check_dsn(database_url)
    user = quote(params.get("user", ""), safe="")
    password = params.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = params.get("host", "")
    port = f":{params['port']}" if params.get("port") else ""
    dbname = quote(params.get("dbname", ""), safe="")
    # Pin yoyo's bookkeeping to ``public``: with the default search_path ("$user", public) a
    # role named like a schema would otherwise move it once that schema exists. Migration SQL
    # therefore qualifies every name with its schema.
    extra = {k: v for k, v in params.items() if k not in _URL_PARTS}
    query = urlencode({**extra, "schema": "public"})
    return f"postgresql+psycopg://{auth}{host}{port}/{dbname}?{query}"


def _backend(database_url: str) -> DatabaseBackend:
    try:
        return yoyo.get_backend(_yoyo_url(database_url))
    except psycopg.Error as exc:
        raise connection_problem(exc, dsn_secrets(database_url)) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep yoyo's printed rows off stdout and its step lines out of the log.

    yoyo prints the rows a migration's statements return; the command reports what it applied.
    """
    yoyo_logger = logging.getLogger("yoyo")
    level = yoyo_logger.level
    yoyo_logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            yield
    finally:
        yoyo_logger.setLevel(level)
    if printed.getvalue():
        logging.getLogger(__name__).debug("migration output: %s", printed.getvalue())


def pending_migrations(database_url: str, source: Path = MIGRATIONS_DIR) -> list[str]:
    """Ids of the migrations not yet applied, in order."""
    backend = _backend(database_url)
    try:
        return [m.id for m in backend.to_apply(yoyo.read_migrations(str(source)))]
    finally:
        backend.connection.close()


def apply_migrations(database_url: str, source: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration under a lock; return the ids applied."""
    backend = _backend(database_url)
    # yoyo upgrades its own bookkeeping tables under the same lock; do it before we take it.
    try:
        with _quiet():
            backend.ensure_internal_schema_updated()
            with backend.lock():
                todo = backend.to_apply(yoyo.read_migrations(str(source)))
                backend.apply_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()
