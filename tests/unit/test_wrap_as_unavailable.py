"""``oncepipe.db.wrap_as_unavailable``: a lost session becomes ``DatabaseUnavailableError``."""

from __future__ import annotations

import psycopg
import pytest

from oncepipe.db import SESSION_FAILURES, wrap_as_unavailable
from oncepipe.errors import DatabaseUnavailableError, RetriableError


@pytest.mark.parametrize(
    "failure",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
        psycopg.errors.IdleInTransactionSessionTimeout("terminating connection"),
    ],
)
def test_a_session_failure_becomes_unavailable_with_its_cause(failure: psycopg.Error) -> None:
    cleaned: list[str] = []
    with (
        pytest.raises(DatabaseUnavailableError) as caught,
        wrap_as_unavailable(
            lambda exc: f"lost ({exc.sqlstate or 'connection'})",
            cleanup=lambda: cleaned.append("closed"),
        ),
    ):
        raise failure
    assert isinstance(caught.value, RetriableError)
    assert caught.value.__cause__ is failure
    assert str(caught.value) == f"lost ({failure.sqlstate or 'connection'})"
    assert cleaned == ["closed"]


@pytest.mark.parametrize(
    "other",
    [
        psycopg.errors.UndefinedTable("relation does not exist"),
        psycopg.errors.UniqueViolation("duplicate key"),
        ValueError("a handler's own error"),
        DatabaseUnavailableError("already ours"),
    ],
)
def test_other_errors_pass_through_unchanged_and_nothing_is_cleaned(other: Exception) -> None:
    cleaned: list[str] = []
    with (
        pytest.raises(type(other)) as caught,
        wrap_as_unavailable("lost", cleanup=lambda: cleaned.append("closed")),
    ):
        raise other
    assert caught.value is other
    assert cleaned == []


def test_a_fixed_message_and_a_narrower_catch() -> None:
    check = psycopg.errors.CheckViolation("no partition of relation found for row")
    with (
        pytest.raises(DatabaseUnavailableError) as caught,
        wrap_as_unavailable("no partition for today", catch=(psycopg.errors.CheckViolation,)),
    ):
        raise check
    assert str(caught.value) == "no partition for today"
    assert caught.value.__cause__ is check
    # With a narrower catch, a session failure is not this block's business.
    lost = psycopg.OperationalError("gone")
    with (
        pytest.raises(psycopg.OperationalError) as passed,
        wrap_as_unavailable("unused", catch=(psycopg.errors.CheckViolation,)),
    ):
        raise lost
    assert passed.value is lost


def test_a_block_that_succeeds_is_left_alone() -> None:
    with wrap_as_unavailable("unused", cleanup=pytest.fail):
        value = 1
    assert value == 1


def test_the_default_catch_is_the_session_failures() -> None:
    assert psycopg.OperationalError in SESSION_FAILURES
