"""``oncepipe schema``: the event types this process knows, their versions and their evolution.

Known types are the shipped ones, those of installed ``oncepipe.event_types`` entry points,
those on ``ONCEPIPE_SCHEMA_PATH`` and those of the modules named by ``--import`` (importing a
module runs its ``@event_type`` decorators). ``check`` and ``new`` need no service.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psycopg
import typer

from cli.event_types import IMPORT, import_event_modules
from cli.shared import EXIT_FAILURE, emit_json, state
from oncepipe.errors import ConfigError, OncepipeError
from schemas import (
    Codec,
    EventTypeEntry,
    SchemaStore,
    SchemaVersion,
    history_problems,
    known_types,
    load_catalog,
    load_entry_points,
    register_schema_path,
    snake_case,
    versions_by_type,
)

__all__ = ["schema_app"]

schema_app = typer.Typer(
    help="Event types and their Avro versions: list, check, register, new. Known types: the "
    "shipped ones, installed oncepipe.event_types entry points, ONCEPIPE_SCHEMA_PATH and --import.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _known(ctx: typer.Context, modules: list[str] | None) -> dict[str, EventTypeEntry]:
    """Every type known once the schema path, the entry points and ``modules`` are loaded."""
    register_schema_path(state(ctx).settings.schema_path)
    load_entry_points()
    import_event_modules(modules)
    return known_types()


@schema_app.command("list")
def list_types(
    ctx: typer.Context,
    modules: list[str] | None = IMPORT,
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Types, versions, fingerprints, files, and which versions the schema store holds."""
    types = _known(ctx, modules)
    fingerprints = [fp for entry in types.values() for fp in entry.fingerprints]
    stored: set[str] | None
    try:
        stored = SchemaStore(state(ctx).settings.database_url.get_secret_value()).stored(
            fingerprints
        )
    except psycopg.Error as exc:
        stored = None  # listing works without the database; the column says "?"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"oncepipe: schema store not read ({reason}); stored shows ?", file=sys.stderr)
    rows = [_row(entry, version, stored) for entry in types.values() for version in entry.versions]
    if as_json:
        emit_json(rows)
        return
    headers = ["type", "version", "fingerprint", "stored", "model", "file"]
    table = [
        [
            str(row["event_type"]),
            f"v{row['version']}",
            str(row["fingerprint"]),
            {True: "yes", False: "no", None: "?"}[row["stored"]],
            str(row["model"]),
            str(row["file"]),
        ]
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *table, strict=False)]
    for line in [headers, *table]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _row(entry: EventTypeEntry, version: SchemaVersion, stored: set[str] | None) -> dict[str, Any]:
    model = entry.model
    return {
        "event_type": entry.event_type,
        "version": version.version,
        "newest": version is entry.versions[-1],
        "fingerprint": version.schema.fingerprint,
        "stored": None if stored is None else version.schema.fingerprint in stored,
        "origin": entry.origin,
        "model": f"{model.__module__}.{model.__qualname__}"
        if not entry.generated
        else "(generated)",
        "key_field": model.key_field,
        "file": str(version.path),
    }


@schema_app.command("check")
def check(
    ctx: typer.Context,
    directories: list[Path] | None = typer.Argument(
        None,
        help="directories of .avsc files to check; without any, every known type is checked",
        metavar="DIR",
        show_default=False,
    ),
    modules: list[str] | None = IMPORT,
) -> None:
    """Every older version readable as each newer one, logical types kept; exit 1 if not.

    Needs no service: run it in CI before publishing a new version.
    """
    if directories:
        groups: dict[str, list[SchemaVersion]] = {}
        for directory in directories:
            if not directory.is_dir():
                raise ConfigError(f"{directory} is not a directory of .avsc files")
            groups.update(versions_by_type(load_catalog(directory)))
    else:
        groups = {name: list(entry.versions) for name, entry in _known(ctx, modules).items()}
    failed = 0
    for name, history in sorted(groups.items()):
        problems = history_problems(history)
        where = history[-1].path.parent
        if problems:
            failed += 1
            for problem in problems:
                print(f"{name} ({where}): {problem}", file=sys.stderr)
        else:
            span = "v1 only" if len(history) == 1 else f"v1..v{len(history)} compatible"
            print(f"{name}: {span} ({where})")
    if failed:
        print(
            f"oncepipe: {failed} of {len(groups)} event type(s) have incompatible versions: "
            "give the new field a default, keep types and logical types, or revert the change",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_FAILURE)


@schema_app.command("register")
def register(
    ctx: typer.Context,
    modules: list[str] | None = IMPORT,
) -> None:
    """Store every known writer schema in PostgreSQL, for consumers that do not ship them."""
    _known(ctx, modules)
    codec = Codec.load()  # refuses incompatible histories before anything is stored
    store = SchemaStore(state(ctx).settings.database_url.get_secret_value())
    added = store.register(codec)
    total = len(codec.writer_schemas())
    print(f"{added} new writer schema(s) stored, {total - added} already there")


@schema_app.command("new")
def new(
    ctx: typer.Context,
    event_type: str = typer.Argument(..., help="the record name (OrderPlaced) or its snake name"),
    directory: Path | None = typer.Option(
        None,
        "--dir",
        help="where the type's .avsc files are (default: where the known type's files are)",
    ),
    modules: list[str] | None = IMPORT,
) -> None:
    """Write the next version file of a type, a copy of its newest one, to edit.

    A type with no file yet gets a v1 with its event_id (needs --dir). Never overwrites.
    """
    stem = snake_case(event_type) if not event_type.islower() else event_type
    if directory is not None:
        if not directory.is_dir():
            raise ConfigError(f"--dir {directory} is not a directory")
        history = [v for v in load_catalog(directory) if snake_case(v.event_type) == stem]
    else:
        entry = next(
            (e for e in _known(ctx, modules).values() if snake_case(e.event_type) == stem), None
        )
        if entry is None:
            raise ConfigError(
                f"no known event type {event_type}: give --dir DIR to start its v1 there, or "
                "--import the module that declares it"
            )
        history = list(entry.versions)
        directory = history[-1].path.parent
    if history:
        text = history[-1].path.read_text(encoding="utf-8")
        target = directory / f"{stem}.v{history[-1].version + 1}.avsc"
        hint = "edit it: a new field needs a default; then `oncepipe schema check`"
    else:
        if event_type.islower():
            raise ConfigError(f"give the record name of a new type (OrderPlaced), not {stem}")
        text = _first_version(event_type)
        target = directory / f"{stem}.v1.avsc"
        hint = "add its fields, and a model with @schemas.event_type"
    try:
        with target.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise OncepipeError(f"{target} exists already; nothing was written") from None
    print(f"wrote {target}: {hint}")


def _first_version(name: str) -> str:
    document = {
        "type": "record",
        "name": name,
        "fields": [
            {
                "name": "event_id",
                "type": {"type": "string", "logicalType": "uuid"},
                "doc": "Chosen by whoever first records the event; a retry repeats it.",
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
