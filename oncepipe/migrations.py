"""Versioned, forward-only SQL migrations (``oncepipe/sql/NNNN_name.sql``), applied by yoyo.

Applied migrations are recorded in the database (yoyo's ``_yoyo_migration`` table), and a
database lock keeps two workers starting at once from applying the same file twice.

Once the role layout exists (migration 0014), migrations run as the schema's NOLOGIN owner
(``SET ROLE oncepipe_owner``), whatever login the command used: every object they create
belongs to the owner, and ``oncepipe.apply_grants()`` then grants each component role its
rows of ``oncepipe.role_grants``. The login must be a member of the owner (the migrator role,
or the superuser that ran 0014).

Public names: ``MIGRATIONS_DIR``, ``OWNER_ROLE``, ``pending_migrations``, ``apply_migrations``,
``act_as_owner``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import yoyo
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from yoyo.backends import DatabaseBackend

from oncepipe.conninfo import check_dsn, connection_problem, dsn_secrets
from oncepipe.logging import get_logger

__all__ = [
    "MIGRATIONS_DIR",
    "OWNER_ROLE",
    "act_as_owner",
    "apply_migrations",
    "pending_migrations",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "sql"
_URL_PARTS = ("user", "password", "host", "port", "dbname")
OWNER_ROLE = "oncepipe_owner"
# The role exists cluster-wide once any database ran 0014: act as it only where it owns the
# schema (this database has the role layout) and the login is one of its members.
_CAN_ACT_AS_OWNER = """
SELECT EXISTS (
    SELECT FROM pg_catalog.pg_namespace AS n
    WHERE n.nspname = 'oncepipe' AND n.nspowner = to_regrole(%(owner)s)
) AND pg_has_role(current_user, %(owner)s, 'MEMBER')
"""
_DEADLOCK_ATTEMPTS = 5
_HAS_GRANTS = "SELECT to_regprocedure('oncepipe.apply_grants()') IS NOT NULL"


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


def act_as_owner(conn: Any) -> bool:
    """``SET ROLE`` the session to the schema's owner when it exists and the login may; True if so.

    ``conn`` is a DB-API connection (psycopg's, or the one yoyo holds); the change is committed.
    """
    cursor = conn.cursor()
    cursor.execute(_CAN_ACT_AS_OWNER, {"owner": OWNER_ROLE})
    row = cursor.fetchone()
    able = bool(row and row[0])
    if able:
        cursor.execute(f'SET ROLE "{OWNER_ROLE}"')
    conn.commit()
    return able


def _apply_grants(conn: Any) -> None:
    cursor = conn.cursor()
    cursor.execute(_HAS_GRANTS)
    row = cursor.fetchone()
    if row and row[0]:
        cursor.execute("SELECT oncepipe.apply_grants()")
    conn.commit()


def pending_migrations(database_url: str, source: Path = MIGRATIONS_DIR) -> list[str]:
    """Ids of the migrations not yet applied, in order."""
    backend = _backend(database_url)
    try:
        return [m.id for m in backend.to_apply(yoyo.read_migrations(str(source)))]
    finally:
        backend.connection.close()


def apply_migrations(database_url: str, source: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration under a lock; return the ids applied.

    Workers may run meanwhile: a migration that takes their tables' locks in another order than
    a batch does can deadlock with it. PostgreSQL then rolls one transaction back; when it is
    the migration's, it is applied again (a batch the server rolls back is retried by its
    worker), so the upgrade neither fails nor waits for the workers to stop.
    """
    pending = pending_migrations(database_url, source)
    for attempt in Retrying(
        retry=retry_if_exception_type(psycopg.errors.DeadlockDetected),
        stop=stop_after_attempt(_DEADLOCK_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.2, max=2.0),
        before_sleep=_log_deadlock,
        reraise=True,
    ):
        with attempt:
            _apply_pending(database_url, source)
    left = set(pending_migrations(database_url, source))
    return [migration for migration in pending if migration not in left]


def _log_deadlock(state: RetryCallState) -> None:
    get_logger("migrations").warning(
        "a migration deadlocked with a running worker and was rolled back; applying it again",
        attempt=state.attempt_number,
    )


def _apply_pending(database_url: str, source: Path) -> None:
    backend = _backend(database_url)
    # yoyo upgrades its own bookkeeping tables under the same lock; do it before we take it.
    try:
        with _quiet():
            backend.ensure_internal_schema_updated()
            act_as_owner(backend.connection)
            with backend.lock():
                todo = backend.to_apply(yoyo.read_migrations(str(source)))
                backend.apply_migrations(todo)
                # Whatever ran (0014 itself, or a table of a later migration), grant the
                # rows of oncepipe.role_grants whose objects exist now.
                act_as_owner(backend.connection)
                _apply_grants(backend.connection)
    finally:
        backend.connection.close()
