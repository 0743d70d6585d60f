"""The shipped .avsc files, the models that mirror them, and the package's import rules."""

from __future__ import annotations

import ast
import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import ClickAction, ClickEvent, Codec
from schemas.catalog import SCHEMA_DIR, CatalogError, load_catalog, shipped_catalog, snake_case

PACKAGE = SCHEMA_DIR.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_one_module_imports_fastavro() -> None:
    importers = [
        path.name
        for path in sorted(PACKAGE.glob("*.py"))
        if any(name.split(".")[0] == "fastavro" for name in imported_modules(path))
    ]
    assert importers == ["avro_io.py"]


def test_the_package_imports_nothing_of_the_workers_or_the_plumbing() -> None:
    for path in PACKAGE.glob("*.py"):
        roots = {name.split(".")[0] for name in imported_modules(path)}
        assert not roots & {"oncepipe", "producers", "consumers", "infra"}, path.name


def test_every_shipped_file_is_a_numbered_version_of_a_click_event() -> None:
    versions = shipped_catalog()
    assert [v.path.name for v in versions] == ["click_event.v1.avsc", "click_event.v2.avsc"]
    assert {v.schema.full_name for v in versions} == {"oncepipe.events.ClickEvent"}
    assert len({v.schema.fingerprint for v in versions}) == len(versions)


def test_the_model_mirrors_the_newest_version() -> None:
    newest = json.loads(shipped_catalog()[-1].schema.text)
    assert [f["name"] for f in newest["fields"]] == list(ClickEvent.model_fields)
    action = next(f for f in newest["fields"] if f["name"] == "action")["type"]
    assert action["symbols"] == [a.value for a in ClickAction]
    surface = next(f for f in newest["fields"] if f["name"] == "surface")
    assert surface["default"] == ClickEvent.model_fields["surface"].default == "unknown"


def test_events_name_their_type_and_the_key_that_orders_them() -> None:
    assert ClickEvent.event_type == "ClickEvent"
    assert ClickEvent.key_field == "user_id"


def test_click_events_are_frozen_and_strict_about_their_fields() -> None:
    event = ClickEvent(
        event_id="8b1f7a52-3c0e-4e1a-9b5d-2f6c7d8e9a0b",
        user_id="u",
        item_id="i",
        action="purchase",
        occurred_at="2025-01-01T00:00:00Z",
        session_id="s",
    )
    with pytest.raises(ValidationError, match="frozen"):
        event.user_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ClickEvent.model_validate({**event.model_dump(), "unexpected": 1})
    with pytest.raises(ValidationError, match="timezone"):
        ClickEvent.model_validate({**event.model_dump(), "occurred_at": datetime(2025, 1, 1)})


def test_snake_case_turns_record_names_into_file_stems() -> None:
    assert snake_case("ClickEvent") == "click_event"
    assert snake_case("Purchase") == "purchase"


def copy_shipped(directory: Path, *names: str) -> None:
    for name in names:
        shutil.copy(SCHEMA_DIR / name, directory / name)


def write_version(directory: Path, name: str, change: dict[str, object]) -> None:
    document = json.loads((SCHEMA_DIR / "click_event.v2.avsc").read_text())
    document.update(change)
    (directory / name).write_text(json.dumps(document))


def test_a_missing_version_is_refused(tmp_path: Path) -> None:
    copy_shipped(tmp_path, "click_event.v2.avsc")
    with pytest.raises(CatalogError, match=r"versions \[2\] are not 1..1; every published"):
        load_catalog(tmp_path)


def test_a_file_named_unlike_its_record_is_refused(tmp_path: Path) -> None:
    shutil.copy(SCHEMA_DIR / "click_event.v1.avsc", tmp_path / "click.v1.avsc")
    with pytest.raises(CatalogError, match=r"rename the file to click_event.v1.avsc"):
        load_catalog(tmp_path)


def test_a_badly_numbered_file_name_is_refused(tmp_path: Path) -> None:
    shutil.copy(SCHEMA_DIR / "click_event.v1.avsc", tmp_path / "click_event.avsc")
    with pytest.raises(CatalogError, match=r"<snake_name>.v<N>.avsc"):
        load_catalog(tmp_path)


def test_a_version_that_only_changes_docs_is_refused(tmp_path: Path) -> None:
    copy_shipped(tmp_path, "click_event.v1.avsc", "click_event.v2.avsc")
    write_version(tmp_path, "click_event.v3.avsc", {"doc": "new words, same wire format"})
    with pytest.raises(CatalogError, match=r"has the fingerprint of click_event\.v2\.avsc"):
        load_catalog(tmp_path)


def test_an_incompatible_new_version_is_refused_when_the_codec_loads(tmp_path: Path) -> None:
    copy_shipped(tmp_path, "click_event.v1.avsc", "click_event.v2.avsc")
    v2 = json.loads((SCHEMA_DIR / "click_event.v2.avsc").read_text())
    fields = [f for f in v2["fields"] if f["name"] != "surface"]
    fields.append({"name": "surface", "type": "int"})
    write_version(tmp_path, "click_event.v3.avsc", {"fields": fields})
    with pytest.raises(CatalogError, match=r"v2 -> v3: ClickEvent\.surface: type changed"):
        Codec(load_catalog(tmp_path))


def test_a_new_version_without_its_model_field_is_refused(tmp_path: Path) -> None:
    copy_shipped(tmp_path, "click_event.v1.avsc", "click_event.v2.avsc")
    v2 = json.loads((SCHEMA_DIR / "click_event.v2.avsc").read_text())
    fields = [*v2["fields"], {"name": "rank", "type": "int", "default": 0}]
    write_version(tmp_path, "click_event.v3.avsc", {"fields": fields})
    with pytest.raises(CatalogError, match="keep the model in step with the newest version"):
        Codec(load_catalog(tmp_path))


def test_a_schema_without_a_model_is_refused(tmp_path: Path) -> None:
    document = {"type": "record", "name": "Purchase", "fields": [{"name": "a", "type": "int"}]}
    (tmp_path / "purchase.v1.avsc").write_text(json.dumps(document))
    with pytest.raises(CatalogError, match="no event model named Purchase"):
        Codec(load_catalog(tmp_path))
