"""PostgreSQL connection factories, and the one place a session failure becomes ours.

Worker sessions carry ``idle_in_transaction_session_timeout`` so a stalled worker cannot hold
row locks forever, an ``application_name`` so operators can tell sessions apart, and READ
COMMITTED whatever the role or database default: the inbox claim and the offsets
compare-and-set rely on re-reading rows other transactions committed (a startup option
outranks ``ALTER ROLE/DATABASE ... SET default_transaction_isolation``).

A failure that ends a session says nothing about the work in it; ``wrap_as_unavailable`` turns
it into ``DatabaseUnavailableError`` (a ``RetriableError``), chained to the driver's error, so
every caller retries it the same way.

Behind PgBouncer (``ONCEPIPE_DATABASE_POOLER=transaction|session``) no ``options`` startup
parameter is sent (PgBouncer refuses it): READ COMMITTED is then asked for in every ``BEGIN``,
and in transaction mode the idle-in-transaction limit is PgBouncer's ``idle_transaction_timeout``
and psycopg prepares no statement (a prepared statement lives in one server session, and the
next transaction may get another). What needs a session of its own (LISTEN, session advisory
locks, ``SET ROLE``) calls ``require_session``, which refuses transaction pooling at start-up.

Public names: ``SESSION_FAILURES``, ``connect``, ``create_pool``, ``require_session``,
``wrap_as_unavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from oncepipe.conninfo import pooler_problem
from oncepipe.errors import ConfigError, DatabaseUnavailableError
from oncepipe.settings import Settings

__all__ = ["SESSION_FAILURES", "connect", "create_pool", "require_session", "wrap_as_unavailable"]


# What ends a session but says nothing about the work in it: a lost or refused connection, a
# serialization failure or deadlock (OperationalError), a fail-over that landed on a read-only
# node (25006) and the server ending an idle session (25P03; psycopg files both under
# InternalError). Roll back, open a new session, retry.
SESSION_FAILURES: tuple[type[psycopg.Error], ...] = (
    psycopg.OperationalError,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg.errors.IdleInTransactionSessionTimeout,
)


@contextmanager
def wrap_as_unavailable(
    message: str | Callable[[psycopg.Error], str],
    *,
    catch: tuple[type[psycopg.Error], ...] = SESSION_FAILURES,
    cleanup: Callable[[], object] | None = None,
) -> Iterator[None]:
    """Raise ``DatabaseUnavailableError(message) from`` the error when the block raises ``catch``.

    ``message`` is the text, or makes it from the driver's error. ``cleanup`` runs first (close
    a session that cannot be used again). Any other exception passes through unchanged.
    """
    try:
        yield
    except catch as exc:
        if cleanup is not None:
            cleanup()
        text = message if isinstance(message, str) else message(exc)
        raise DatabaseUnavailableError(text) from exc


def require_session(settings: Settings, component: str, needs: str) -> None:
    """Refuse to start ``component`` behind a transaction-pooling PgBouncer (``ConfigError``).

    ``needs`` names what would not survive: a session's state is lost when PgBouncer hands the
    next transaction another server connection.
    """
    if settings.database_pooler == "transaction":
        raise ConfigError(
            f"{component} needs {needs}, which PgBouncer's transaction pooling does not keep "
            "(ONCEPIPE_DATABASE_POOLER=transaction): point ONCEPIPE_DATABASE_URL at PostgreSQL "
            "itself (ONCEPIPE_DATABASE_POOLER=none) or at a session-mode pool (=session)"
        )


def _cannot_connect(exc: psycopg.Error) -> str:
    return (
        f"cannot connect to PostgreSQL ({exc.sqlstate or 'no SQLSTATE'}): "
        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}; "
        "check ONCEPIPE_DATABASE_URL and that the server runs (make up)"
    )


def _connect_kwargs(settings: Settings, application_name: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"application_name": application_name, "connect_timeout": 10}
    if settings.database_pooler == "none":
        timeout = settings.idle_in_transaction_timeout_ms
        kwargs["options"] = (
            f"-c idle_in_transaction_session_timeout={timeout}"
            " -c default_transaction_isolation=read\\ committed"
        )
    elif settings.database_pooler == "transaction":
        kwargs["prepare_threshold"] = None
    return kwargs


def _configure(settings: Settings) -> Callable[[psycopg.Connection[TupleRow]], None]:
    """What a pooled connection needs once open, in place of the ``options`` it cannot send."""

    def configure(conn: psycopg.Connection[TupleRow]) -> None:
        if settings.database_pooler == "none":
            return
        conn.isolation_level = IsolationLevel.READ_COMMITTED  # said in each BEGIN
        if settings.database_pooler == "session":
            timeout = str(settings.idle_in_transaction_timeout_ms)
            conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)", (timeout,)
            )
            if not conn.autocommit:
                conn.commit()

    return configure


def connect(
    settings: Settings, application_name: str = "oncepipe", *, autocommit: bool = False
) -> psycopg.Connection[TupleRow]:
    """Open one connection; an unreachable server raises ``DatabaseUnavailableError``."""
    try:
        conn = psycopg.connect(
            settings.database_url.get_secret_value(),
            autocommit=autocommit,
            **_connect_kwargs(settings, application_name),
        )
    except psycopg.OperationalError as exc:
        problem = pooler_problem(exc)
        if problem is not None:
            raise problem from None
        raise DatabaseUnavailableError(_cannot_connect(exc)) from exc
    _configure(settings)(conn)
    return conn


def create_pool(
    settings: Settings, application_name: str = "oncepipe", *, min_size: int = 1, max_size: int = 4
) -> ConnectionPool[psycopg.Connection[TupleRow]]:
    """A connection pool with the same session settings as ``connect``."""
    return ConnectionPool(
        settings.database_url.get_secret_value(),
        min_size=min_size,
        max_size=max_size,
        kwargs=_connect_kwargs(settings, application_name),
        configure=_configure(settings),
        open=True,
    )
