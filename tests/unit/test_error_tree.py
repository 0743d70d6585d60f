"""One error tree: every exception class the product defines derives from ``OncepipeError``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import oncepipe.errors
import schemas.errors
from cli.failures import translate
from consumers.deadletter_headers import DeadLetterFormatError
from consumers.redact import describe
from oncepipe.errors import OncepipeError, PoisonError
from oncepipe.kafka import HeadersUnreadableError
from schemas.avro_io import AvroDataError, InvalidSchemaError
from schemas.catalog import CatalogError

PRODUCT_PACKAGES = ("oncepipe", "schemas", "producers", "consumers", "cli")


def _modules() -> list[ModuleType]:
    found = []
    for name in PRODUCT_PACKAGES:
        package = importlib.import_module(name)
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            found.append(importlib.import_module(info.name))
    return found


def _exception_classes() -> dict[str, type[BaseException]]:
    classes = {}
    for module in _modules():
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return classes


def test_every_exception_class_of_the_product_derives_from_the_root() -> None:
    classes = _exception_classes()
    # The walk found the product's errors, the ones outside oncepipe.errors included.
    assert {
        "schemas.errors.SchemaError",
        "schemas.avro_io.AvroDataError",
        "schemas.catalog.CatalogError",
        "consumers.deadletter_headers.DeadLetterFormatError",
        "oncepipe.kafka.HeadersUnreadableError",
        "consumers.failures.NotOwnerError",
    } <= classes.keys()
    strays = sorted(name for name, kind in classes.items() if not issubclass(kind, OncepipeError))
    assert strays == []


def test_the_root_is_one_class_defined_under_the_contract() -> None:
    assert oncepipe.errors.OncepipeError is schemas.errors.OncepipeError
    assert schemas.errors.SchemaError.__mro__[1] is OncepipeError


@pytest.mark.parametrize("kind", [schemas.errors.SchemaError, InvalidSchemaError])
def test_bad_input_errors_stay_value_errors_for_their_callers(kind: type[Exception]) -> None:
    assert issubclass(kind, OncepipeError)
    assert issubclass(kind, ValueError)


@pytest.mark.parametrize(
    "error",
    [
        AvroDataError("TypeError: 'secret-payload' is not an int"),
        InvalidSchemaError("not a valid Avro schema: secret-payload"),
        CatalogError("secret-payload"),
        DeadLetterFormatError("header dlq.original.offset=secret-payload is not a number"),
        HeadersUnreadableError("UnicodeDecodeError: secret-payload"),
        schemas.errors.SchemaError("secret-payload"),
    ],
)
def test_a_handler_error_that_may_quote_its_input_is_still_withheld(error: Exception) -> None:
    # Under the root now, but not written for a dead-letter header: the message stays out.
    failure = describe(error)
    assert "secret-payload" not in failure.message
    assert "message withheld" in failure.message


def test_a_poison_error_message_is_still_kept() -> None:
    assert describe(PoisonError("item not in the catalog")).message == "item not in the catalog"


def test_the_command_line_reports_any_error_of_the_tree_as_itself() -> None:
    error = CatalogError("click_event.v2.avsc: versions [2] are not 1..1")
    reported = translate(error, [])
    assert reported is error
    assert str(reported) == "click_event.v2.avsc: versions [2] are not 1..1"
