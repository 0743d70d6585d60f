"""One table decides what a failure means: transient, pending, poison, unexpected or fatal."""

from __future__ import annotations

import psycopg
import pytest

from consumers.classify import Kind, classify, is_transient
from consumers.decoding import MissingEventIdError, TombstoneError
from oncepipe.errors import (
    BrokerError,
    ConfigError,
    DatabaseUnavailableError,
    PoisonError,
    RetriableError,
)
from schemas import (
    BadMagicError,
    CorruptBodyError,
    IncompatibleSchemaError,
    PayloadTooLargeError,
    UnknownFingerprintError,
    ValidationFailedError,
)

TRANSIENT = [
    psycopg.OperationalError("connection lost"),
    psycopg.errors.SerializationFailure(),
    psycopg.errors.DeadlockDetected(),
    psycopg.errors.LockNotAvailable(),
    psycopg.errors.QueryCanceled(),
    psycopg.errors.AdminShutdown(),
    psycopg.errors.CannotConnectNow(),
    psycopg.errors.ReadOnlySqlTransaction(),
    psycopg.errors.IdleInTransactionSessionTimeout(),
    RetriableError("x"),
    DatabaseUnavailableError("x"),
    BrokerError("x", code=-195, name="_TRANSPORT", retriable=True, fatal=False),
]
POISON = [
    BadMagicError("x"),
    CorruptBodyError("x"),
    PayloadTooLargeError("x"),
    IncompatibleSchemaError("x"),
    ValidationFailedError("x"),
    PoisonError("x"),
    TombstoneError("x"),
    MissingEventIdError("x"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_database_and_broker_failures_are_transient(error: BaseException) -> None:
    assert classify(error) is Kind.TRANSIENT


@pytest.mark.parametrize("error", POISON, ids=lambda e: type(e).__name__)
def test_bad_bytes_invalid_events_and_handler_poison_are_poison(error: BaseException) -> None:
    assert classify(error) is Kind.POISON


def test_an_unknown_writer_schema_is_pending_not_poison() -> None:
    assert classify(UnknownFingerprintError("x")) is Kind.PENDING


@pytest.mark.parametrize(
    "error", [ConfigError("x"), psycopg.errors.UndefinedTable(), psycopg.ProgrammingError()]
)
def test_a_wrong_deployment_stops_the_worker(error: BaseException) -> None:
    assert classify(error) is Kind.FATAL


@pytest.mark.parametrize(
    "error", [ValueError("x"), KeyError("x"), psycopg.errors.UniqueViolation(), RuntimeError()]
)
def test_anything_else_a_handler_raises_is_counted(error: BaseException) -> None:
    assert classify(error) is Kind.UNEXPECTED


def test_a_handler_wrapping_a_dropped_connection_is_still_transient() -> None:
    def handler() -> None:
        try:
            raise psycopg.OperationalError("server closed the connection")
        except psycopg.OperationalError as exc:
            raise RuntimeError("could not save the click") from exc

    with pytest.raises(RuntimeError) as caught:
        handler()
    assert is_transient(caught.value)
    assert classify(caught.value) is Kind.TRANSIENT
