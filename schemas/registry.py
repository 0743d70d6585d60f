"""Event types from the user's code: registered models and their ``.avsc`` versions.

The shipped types (``schemas/avro/`` + ``EVENT_MODELS``) are always known. Others join in
three ways, all ending in ``register``:

- the ``@event_type(directory)`` decorator on a user-written model: importing the module
  registers the model with the versions of its type found in ``directory``;
- an entry point in the group ``oncepipe.event_types`` whose value is a module to import
  (``load_entry_points``, called by ``Codec.load``): an installed package's types are known
  to every oncepipe process without naming them;
- directories of ``.avsc`` files (``register_directories``; the command line passes
  ``ONCEPIPE_SCHEMA_PATH``): a type found there with no written model gets one generated
  from its newest version (``schemas.generated``), so the codec, ``dlq show`` and generic
  tools work for it; a written model, registered before or after, takes its place.

A written model must have exactly the fields of the newest version (``ModelMismatchError``
names the others); one type name with two different version histories is refused
(``EventTypeConflictError``), whoever registered them.

Public names: ``ENTRY_POINT_GROUP``, ``EventTypeEntry``, ``event_type``, ``register``,
``register_directories``, ``register_schema_path``, ``load_entry_points``, ``known_types``,
``unregister``, ``model_mismatch``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

from schemas.catalog import (
    CatalogError,
    EventTypeConflictError,
    ModelMismatchError,
    SchemaVersion,
    load_catalog,
    shipped_catalog,
    snake_case,
)
from schemas.generated import model_from_schema
from schemas.models import EVENT_MODELS, Event

__all__ = [
    "ENTRY_POINT_GROUP",
    "EventTypeEntry",
    "event_type",
    "known_types",
    "load_entry_points",
    "model_mismatch",
    "register",
    "register_directories",
    "register_schema_path",
    "unregister",
]

ENTRY_POINT_GROUP = "oncepipe.event_types"

EventT = TypeVar("EventT", bound=Event)


@dataclass(frozen=True, slots=True)
class EventTypeEntry:
    """One known event type: its model and every version of its schema, oldest first."""

    event_type: str
    model: type[Event]
    versions: tuple[SchemaVersion, ...]
    origin: str
    """Where it came from: ``shipped``, ``decorator``, ``schema path`` (model generated)."""

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The versions' fingerprints, oldest first."""
        return tuple(v.schema.fingerprint for v in self.versions)

    @property
    def generated(self) -> bool:
        """True when the model was generated from the newest ``.avsc``."""
        return self.origin == "schema path"


_REGISTERED: dict[str, EventTypeEntry] = {}


def model_mismatch(model: type[Event], newest: SchemaVersion) -> str | None:
    """Why ``model`` cannot stand for ``newest`` (the fields that differ), or None."""
    schema_fields = [f["name"] for f in newest.schema.writing["fields"]]
    model_fields = list(model.model_fields)
    only_schema = [name for name in schema_fields if name not in model_fields]
    only_model = [name for name in model_fields if name not in schema_fields]
    if not only_schema and not only_model:
        return None
    parts = []
    if only_schema:
        parts.append(f"fields {only_schema} are in the schema but not the model")
    if only_model:
        parts.append(f"fields {only_model} are in the model but not the schema")
    return (
        f"{model.__module__}.{model.__qualname__} does not match {newest.path.name}, the newest "
        f"{newest.event_type} version: {'; '.join(parts)}; keep the model in step with the "
        "newest version (add a version with `oncepipe schema new` when the schema changes)"
    )


def event_type(directory: Path | str) -> Callable[[type[EventT]], type[EventT]]:
    """Class decorator: register the model with its type's ``.avsc`` versions in ``directory``.

    ``directory`` holds ``<snake_name>.v<N>.avsc`` files (other types' files may sit beside
    them). Raises ``ModelMismatchError`` when the model's fields differ from the newest version.
    """
    folder = Path(directory)

    def add(model: type[EventT]) -> type[EventT]:
        name = getattr(model, "event_type", None)
        if not isinstance(name, str) or not name:
            raise CatalogError(
                f'{model.__qualname__}: declare `event_type: ClassVar[str] = "<AvroRecordName>"`'
            )
        versions = tuple(v for v in load_catalog(folder) if v.event_type == name)
        if not versions:
            raise CatalogError(
                f"{model.__qualname__}: no {snake_case(name)}.v1.avsc in {folder}; write the "
                f"schema of {name} there (`oncepipe schema new {name} --dir {folder}`)"
            )
        register(model, versions, origin="decorator")
        return model

    return add


def register(model: type[Event], versions: Sequence[SchemaVersion], *, origin: str) -> None:
    """Make ``model`` and its versions (oldest first) known to every ``Codec.load()``."""
    name = versions[0].event_type
    if not (isinstance(model, type) and issubclass(model, Event)):
        raise CatalogError(f"{name}: {model!r} is not a subclass of schemas.Event")
    key = getattr(model, "key_field", None)
    if key not in model.model_fields:
        raise CatalogError(
            f"{model.__qualname__}: key_field {key!r} is not one of its fields; declare "
            '`key_field: ClassVar[str] = "<field>"`, the field whose events stay in order'
        )
    problem = model_mismatch(model, versions[-1])
    if problem is not None:
        raise ModelMismatchError(problem)
    entry = EventTypeEntry(name, model, tuple(versions), origin)
    current = _known().get(name)
    if current is not None:
        if current.fingerprints != entry.fingerprints:
            raise EventTypeConflictError(_conflict(current, entry))
        if current.origin == "shipped" or (entry.generated and not current.generated):
            return  # the written or shipped model stays: a generated one only fills a gap
    _REGISTERED[name] = entry


def register_directories(directories: Iterable[Path | str]) -> list[EventTypeEntry]:
    """Register every type found in these ``.avsc`` directories (``ONCEPIPE_SCHEMA_PATH``).

    A type without a written model gets one generated from its newest version. Returns the
    entries as known afterwards.
    """
    found: list[EventTypeEntry] = []
    for directory in directories:
        folder = Path(directory)
        if not folder.is_dir():
            raise CatalogError(
                f"schema path entry {folder} is not a directory; ONCEPIPE_SCHEMA_PATH lists "
                "directories of .avsc files, separated by the OS path separator"
            )
        by_type: dict[str, list[SchemaVersion]] = {}
        for version in load_catalog(folder):
            by_type.setdefault(version.event_type, []).append(version)
        for name, versions in by_type.items():
            current = _known().get(name)
            same = tuple(v.schema.fingerprint for v in versions)
            if current is not None and not current.generated and current.fingerprints == same:
                found.append(current)  # a written model is known already: nothing to generate
                continue
            model = _generate(versions[-1])
            register(model, versions, origin="schema path")
            found.append(_known()[name])
    return found


def register_schema_path(value: str) -> list[EventTypeEntry]:
    """``register_directories`` of ``ONCEPIPE_SCHEMA_PATH``'s value (``os.pathsep``-separated)."""
    return register_directories(part for part in value.split(os.pathsep) if part.strip())


@cache
def load_entry_points() -> tuple[str, ...]:
    """Import every module named in the ``oncepipe.event_types`` group, once per process."""
    loaded = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            import_module(point.value.partition(":")[0])
        except ImportError as exc:
            raise CatalogError(
                f"entry point {point.name} = {point.value} (group {ENTRY_POINT_GROUP}) cannot "
                f"be imported: {exc}; fix or uninstall the package that declares it"
            ) from exc
        loaded.append(point.value)
    return tuple(loaded)


def known_types() -> dict[str, EventTypeEntry]:
    """Every known type by name: the shipped ones, then the registered ones."""
    return dict(_known())


def unregister(name: str) -> None:
    """Forget a registered type (tests, or a tool reloading a schema path)."""
    _REGISTERED.pop(name, None)


def _known() -> dict[str, EventTypeEntry]:
    return {**_shipped(), **_REGISTERED}


@cache
def _shipped() -> dict[str, EventTypeEntry]:
    by_type: dict[str, list[SchemaVersion]] = {}
    for version in shipped_catalog():
        by_type.setdefault(version.event_type, []).append(version)
    return {
        name: EventTypeEntry(name, EVENT_MODELS[name], tuple(versions), "shipped")
        for name, versions in by_type.items()
        if name in EVENT_MODELS
    }


def _generate(newest: SchemaVersion) -> type[Event]:
    try:
        return model_from_schema(newest.schema)
    except (ValueError, TypeError, KeyError) as exc:
        raise CatalogError(f"{newest.path}: cannot generate a model: {exc}") from exc


def _conflict(current: EventTypeEntry, new: EventTypeEntry) -> str:
    def where(entry: EventTypeEntry) -> str:
        folder = entry.versions[-1].path.parent
        return f"{len(entry.versions)} version(s) in {folder} ({entry.origin})"

    return (
        f"event type {new.event_type} is registered twice with different schemas: "
        f"{where(current)} and {where(new)}; one type name has one history: keep one "
        "directory of its .avsc files, or rename one of the types"
    )
