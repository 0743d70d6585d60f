"""Failures described for dead letters and logs without a byte of the payload in them.

A dead letter travels further than the database it came from (other teams, UIs, tickets), so
its error message and stack trace say WHERE and WHY a record failed, never WHAT it held:
pydantic errors become field paths and error types (not the input values), codec errors
their kind and writer schema (not the leading bytes), database errors their SQLSTATE and
object names (not the offending value). A handler's ``PoisonError`` message is kept: its
author writes it for this header. The stack trace lists the frames and the redacted last
line; chained causes are named by class only.

Public names: ``describe``.
"""

from __future__ import annotations

import traceback

import psycopg
from pydantic import ValidationError

from consumers.deadletter_headers import DeadLetterFormatError, Failure
from oncepipe.errors import OncepipeError
from oncepipe.kafka import HeadersUnreadableError
from schemas import (
    AvroDataError,
    BadMagicError,
    CatalogError,
    CorruptBodyError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    PayloadTooLargeError,
    SchemaError,
    UnknownFingerprintError,
    ValidationFailedError,
)

__all__ = ["describe"]

_MAX_FIELDS = 20
# oncepipe errors whose messages may quote what they were given (a value that does not fit its
# schema, a header's text, a schema's text): withheld like any other handler exception.
_QUOTES_INPUT = (
    SchemaError,
    AvroDataError,
    InvalidSchemaError,
    CatalogError,
    DeadLetterFormatError,
    HeadersUnreadableError,
)
_MAX_CAUSES = 5


def _qualified(kind: type[BaseException]) -> str:
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    return f"{module}{kind.__qualname__}"


def _validation(error: ValidationFailedError) -> str:
    cause = error.__cause__
    if isinstance(cause, ValidationError):
        problems = [
            f"{'.'.join(str(p) for p in item['loc']) or '(record)'} ({item['type']})"
            for item in cause.errors(include_url=False, include_input=False)
        ]
        model = cause.title
    else:
        problems, model = list(error.paths), "the event model"
    shown = ", ".join(problems[:_MAX_FIELDS]) or "(no field named)"
    more = f" and {len(problems) - _MAX_FIELDS} more" if len(problems) > _MAX_FIELDS else ""
    return f"valid Avro that fails {model} at {shown}{more}"


def _database(error: psycopg.Error) -> str:
    diag = error.diag
    names = [
        f"{label} {value}"
        for label, value in (
            ("table", diag.table_name),
            ("column", diag.column_name),
            ("constraint", diag.constraint_name),
            ("type", diag.datatype_name),
        )
        if value
    ]
    where = f" ({', '.join(names)})" if names else ""
    return f"the handler's SQL failed with SQLSTATE {error.sqlstate or 'unknown'}{where}"


def _codec(error: BaseException) -> str | None:
    """The message of a codec error, or None for other errors."""
    fingerprint = getattr(error, "fingerprint", None)
    schema = f" (writer schema {fingerprint})" if fingerprint else ""
    if isinstance(error, ValidationFailedError):
        return _validation(error) + schema
    if isinstance(error, BadMagicError):
        return "the value does not start with the Avro single-object marker c3 01"
    if isinstance(error, CorruptBodyError):
        cause = type(error.__cause__).__name__ if error.__cause__ else "short"
        return f"the Avro body is truncated or corrupt{schema} ({cause})"
    if isinstance(error, PayloadTooLargeError | UnknownFingerprintError | IncompatibleSchemaError):
        return str(error)  # sizes, fingerprints and schema names only
    return None


def _message(error: BaseException) -> str:
    """The error's message as far as it is free of payload."""
    codec = _codec(error)
    if codec is not None:
        return codec
    if isinstance(error, OncepipeError) and not isinstance(error, _QUOTES_INPUT):
        return str(error)  # written on purpose for this header (PoisonError, ...)
    if isinstance(error, psycopg.Error):
        return _database(error)
    return f"the handler raised {type(error).__name__} (message withheld: it may quote the event)"


def _stacktrace(error: BaseException, message: str) -> str:
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_tb(error.__traceback__)
    lines.append(f"{_qualified(type(error))}: {message}\n")
    cause, depth = error.__cause__ or error.__context__, 0
    while cause is not None and depth < _MAX_CAUSES:
        lines.append(f"caused by {_qualified(type(cause))}\n")
        cause, depth = cause.__cause__ or cause.__context__, depth + 1
    return "".join(lines)


def describe(error: BaseException) -> Failure:
    """The error's class, redacted message and frame-only stack trace."""
    message = _message(error)
    return Failure(
        error_class=_qualified(type(error)),
        message=message,
        stacktrace=_stacktrace(error, message),
    )
