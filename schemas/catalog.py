"""The shipped schema versions: every ``schemas/avro/<snake_name>.v<N>.avsc`` file, parsed once.

Every version ever published stays here, because events written with it may still sit in a
topic or a dead-letter queue. Versions of a type are numbered 1, 2, ... without gaps; the
highest is the newest, the one producers write and consumers read into.

Public names: ``SCHEMA_DIR``, ``CatalogError``, ``ModelMismatchError``,
``EventTypeConflictError``, ``SchemaVersion``, ``load_catalog``, ``shipped_catalog``,
``snake_case``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from schemas.avro_io import AvroSchema, InvalidSchemaError, load_schema
from schemas.errors import OncepipeError, SchemaError

__all__ = [
    "SCHEMA_DIR",
    "CatalogError",
    "EventTypeConflictError",
    "ModelMismatchError",
    "SchemaVersion",
    "load_catalog",
    "shipped_catalog",
    "snake_case",
]

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"
_FILE_NAME = re.compile(r"^(?P<stem>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


class CatalogError(OncepipeError):
    """A set of .avsc files (shipped or registered) and models is inconsistent."""


class ModelMismatchError(CatalogError, SchemaError):
    """An event model's fields differ from its newest schema; the message names the fields."""


class EventTypeConflictError(CatalogError, SchemaError):
    """One event type name registered twice with different schema versions."""


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One shipped version of an event type's schema."""

    event_type: str
    version: int
    path: Path
    schema: AvroSchema


def snake_case(name: str) -> str:
    """``ClickEvent`` -> ``click_event``: the file stem of a record name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_catalog(directory: Path = SCHEMA_DIR) -> tuple[SchemaVersion, ...]:
    """Every version in ``directory``, sorted by event type then version; checked for gaps."""
    versions = [_load_file(path) for path in sorted(directory.glob("*.avsc"))]
    versions.sort(key=lambda v: (v.event_type, v.version))
    _check_numbering(versions)
    _check_distinct(versions)
    return tuple(versions)


@cache
def shipped_catalog() -> tuple[SchemaVersion, ...]:
    """The package's own versions, loaded once per process."""
    return load_catalog()


def _load_file(path: Path) -> SchemaVersion:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise CatalogError(f"{path}: schema files are named <snake_name>.v<N>.avsc, N from 1")
    try:
        schema = load_schema(path.read_text(encoding="utf-8"))
    except InvalidSchemaError as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    if not isinstance(schema.writing, dict) or schema.writing.get("type") != "record":
        raise CatalogError(f"{path}: an event schema must be an Avro record")
    if snake_case(schema.name) != match["stem"]:
        raise CatalogError(
            f"{path}: holds record {schema.name}; rename the file to "
            f"{snake_case(schema.name)}.v{match['version']}.avsc"
        )
    return SchemaVersion(schema.name, int(match["version"]), path, schema)


def _check_numbering(versions: Sequence[SchemaVersion]) -> None:
    numbers: dict[str, list[int]] = {}
    for version in versions:
        numbers.setdefault(version.event_type, []).append(version.version)
    for event_type, found in numbers.items():
        if found != list(range(1, len(found) + 1)):
            raise CatalogError(
                f"{event_type}: versions {found} are not 1..{len(found)}; every published "
                "version must stay in schemas/avro/ (events written with it still exist)"
            )


def _check_distinct(versions: Sequence[SchemaVersion]) -> None:
    seen: dict[str, SchemaVersion] = {}
    for version in versions:
        other = seen.setdefault(version.schema.fingerprint, version)
        if other is not version:
            # The fingerprint ignores docs, defaults and aliases: such a "version" cannot be
            # told apart from the other on the wire.
            raise CatalogError(
                f"{version.path.name} has the fingerprint of {other.path.name}: they differ "
                "only in docs, defaults or aliases, which the wire cannot tell apart; make "
                "such a change in the newest file instead of adding a version"
            )
