"""The compatibility checker: shipped versions pass, each kind of breaking change is caught."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from schemas.catalog import shipped_catalog
from schemas.compat import check_compatibility, check_history

CLICK_VERSIONS = [v.schema.text for v in shipped_catalog() if v.event_type == "ClickEvent"]
NEWEST: dict[str, Any] = json.loads(CLICK_VERSIONS[-1])


def field(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in document["fields"] if f["name"] == name)


def changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A next version of ClickEvent: the newest with ``change`` applied."""
    document = copy.deepcopy(NEWEST)
    change(document)
    return document


def add_field_without_default(doc: dict[str, Any]) -> None:
    doc["fields"].append({"name": "referrer", "type": "string"})


def change_item_id_to_long(doc: dict[str, Any]) -> None:
    field(doc, "item_id")["type"] = "long"


def remove_the_purchase_symbol(doc: dict[str, Any]) -> None:
    field(doc, "action")["type"]["symbols"].remove("purchase")


def rename_the_action_enum(doc: dict[str, Any]) -> None:
    field(doc, "action")["type"]["name"] = "Action"


def narrow_context_to_a_map_only(doc: dict[str, Any]) -> None:
    field(doc, "context")["type"] = {"type": "map", "values": "string"}
    del field(doc, "context")["default"]


def context_values_to_int(doc: dict[str, Any]) -> None:
    field(doc, "context")["type"][1]["values"] = "int"


def timestamp_to_micros(doc: dict[str, Any]) -> None:
    field(doc, "occurred_at")["type"]["logicalType"] = "timestamp-micros"


def add_field_with_a_wrong_default(doc: dict[str, Any]) -> None:
    doc["fields"].append({"name": "rank", "type": "int", "default": "first"})


def rename_the_record(doc: dict[str, Any]) -> None:
    doc["name"] = "Interaction"


# -- what the shipped files promise --------------------------------------------------------------


def test_every_shipped_version_reads_every_older_one() -> None:
    assert len(CLICK_VERSIONS) >= 2
    assert check_history(CLICK_VERSIONS) == []


def test_a_schema_is_compatible_with_itself() -> None:
    for text in CLICK_VERSIONS:
        assert check_compatibility(text, text) == []


def test_an_older_reader_can_read_the_newer_version_by_skipping_surface() -> None:
    assert check_compatibility(CLICK_VERSIONS[-1], CLICK_VERSIONS[0]) == []


# -- the breaking changes the brief names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (add_field_without_default, "ClickEvent.referrer: field added without a default"),
        (change_item_id_to_long, "ClickEvent.item_id: type changed from string to long"),
        (remove_the_purchase_symbol, "ClickEvent.action: enum symbol(s) purchase removed"),
        (rename_the_action_enum, "ClickEvent.action: enum oncepipe.events.ClickAction is read as"),
        (narrow_context_to_a_map_only, "ClickEvent.context: type changed from null to map"),
        (context_values_to_int, "ClickEvent.context{}: type changed from string to int"),
        (timestamp_to_micros, "logical type changed from timestamp-millis to timestamp-micros"),
        (add_field_with_a_wrong_default, "ClickEvent.rank: default 'first' is not a valid int"),
        (rename_the_record, "record oncepipe.events.ClickEvent is read as"),
    ],
    ids=lambda v: getattr(v, "__name__", "problem"),
)
def test_a_breaking_change_is_rejected(
    change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    problems = check_compatibility(NEWEST, changed(change))
    assert len(problems) == 1
    assert problem in problems[0]


def test_history_names_the_versions_of_a_breaking_pair() -> None:
    broken = json.dumps(changed(add_field_without_default))
    problems = check_history([*CLICK_VERSIONS, broken])
    assert [p.split(":")[0] for p in problems] == ["v1 -> v3", "v2 -> v3"]


# -- the resolution rules one by one ------------------------------------------------------------


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ],
)
def test_avro_promotions_are_compatible(writer: str, reader: str) -> None:
    assert check_compatibility(json.dumps(writer), json.dumps(reader)) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [("long", "int"), ("double", "float"), ("int", "string"), ("boolean", "int")],
)
def test_narrowing_or_unrelated_primitives_are_not(writer: str, reader: str) -> None:
    [problem] = check_compatibility(json.dumps(writer), json.dumps(reader))
    assert f"type changed from {writer} to {reader}" in problem


def record(*fields: dict[str, Any], name: str = "R", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def test_removing_a_field_is_backward_compatible() -> None:
    writer = record({"name": "a", "type": "int"}, {"name": "b", "type": "int"})
    assert check_compatibility(writer, record({"name": "a", "type": "int"})) == []


def test_a_field_renamed_with_an_alias_still_matches() -> None:
    writer = record({"name": "old", "type": "int"})
    reader = record({"name": "new", "type": "int", "aliases": ["old"]})
    assert check_compatibility(writer, reader) == []


def test_a_record_renamed_with_an_alias_still_matches() -> None:
    writer = record({"name": "a", "type": "int"}, name="Old", namespace="ns")
    reader = record({"name": "a", "type": "int"}, name="New", namespace="ns", aliases=["Old"])
    assert check_compatibility(writer, reader) == []


def test_an_enum_default_absorbs_removed_symbols() -> None:
    writer = {"type": "enum", "name": "E", "symbols": ["a", "b", "c"]}
    reader = {"type": "enum", "name": "E", "symbols": ["a", "other"], "default": "other"}
    assert check_compatibility(writer, reader) == []


def test_fixed_sizes_must_match() -> None:
    writer = {"type": "fixed", "name": "F", "size": 16}
    [problem] = check_compatibility(writer, {**writer, "size": 8})
    assert "fixed size changed from 16 to 8" in problem


def test_a_writer_union_needs_every_branch_in_the_reader() -> None:
    assert check_compatibility(["null", "int"], ["null", "int", "string"]) == []
    [problem] = check_compatibility(["null", "int", "string"], ["null", "long"])
    assert "the writer's string has no branch" in problem


def test_a_plain_writer_resolves_into_a_reader_union_by_promotion() -> None:
    assert check_compatibility('"int"', ["null", "double"]) == []


def test_a_writer_union_reads_into_a_plain_reader_only_if_every_branch_does() -> None:
    assert check_compatibility(["int", "long"], '"long"') == []
    [problem] = check_compatibility(["null", "long"], '"long"')
    assert "type changed from null to long" in problem


def test_arrays_recurse_into_their_items() -> None:
    assert (
        check_compatibility({"type": "array", "items": "int"}, {"type": "array", "items": "long"})
        == []
    )
    [problem] = check_compatibility(
        {"type": "array", "items": "string"}, {"type": "array", "items": "int"}
    )
    assert problem.startswith("array[]: type changed from string to int")


def test_recursive_records_terminate() -> None:
    node = record(
        {"name": "value", "type": "int"},
        {"name": "next", "type": ["null", "Node"], "default": None},
        name="Node",
    )
    assert check_compatibility(node, node) == []


def test_named_types_are_found_by_reference_with_their_namespace() -> None:
    writer = record(
        {"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["x", "y"]}},
        {"name": "b", "type": "E"},
        namespace="ns",
    )
    reader = copy.deepcopy(writer)
    reader["fields"][0]["type"]["symbols"] = ["x"]
    problems = check_compatibility(writer, reader)
    assert [p.split(":")[0] for p in problems] == ["R.a", "R.b"]


def test_an_unknown_type_name_is_an_error_not_a_verdict() -> None:
    with pytest.raises(ValueError, match="unknown type name 'Missing'"):
        check_compatibility(record({"name": "a", "type": "Missing"}), record())
