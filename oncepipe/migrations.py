"""Versioned, forward-only SQL migrations (``infra/migrations/NNNN_name.sql``), applied by yoyo.

Applied migrations are recorded in the database (yoyo's ``_yoyo_migration`` table), and a
database lock keeps two workers starting at once from applying the same file twice.

Public names: ``MIGRATIONS_DIR``, ``pending_migrations``, ``apply_migrations``.
"""

from __future__ import annotations

from pathlib import Path

import yoyo
from yoyo.backends import DatabaseBackend

from oncepipe.errors import DatabaseUnavailableError

__all__ = ["MIGRATIONS_DIR", "apply_migrations", "pending_migrations"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "infra" / "migrations"


def _backend(database_url: str) -> DatabaseBackend:
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in {"postgres", "postgresql"}:
        raise DatabaseUnavailableError(
            "ONCEPIPE_DATABASE_URL must look like postgresql://user@host:port/dbname"
        )
    # Pin yoyo's bookkeeping to ``public``: with the default search_path ("$user", public) a
    # role named like a schema would otherwise move it once that schema exists. Migration SQL
    # therefore qualifies every name with its schema.
    joiner = "&" if "?" in rest else "?"
    try:
        return yoyo.get_backend(f"postgresql+psycopg://{rest}{joiner}schema=public")
    except Exception as exc:  # yoyo re-raises driver errors of several kinds
        raise DatabaseUnavailableError(
            f"cannot open the database to migrate it: {' '.join(str(exc).split())}; "
            "check ONCEPIPE_DATABASE_URL and that PostgreSQL runs (make up)"
        ) from exc


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
        backend.ensure_internal_schema_updated()
        with backend.lock():
            todo = backend.to_apply(yoyo.read_migrations(str(source)))
            backend.apply_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()
