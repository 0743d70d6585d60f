"""``oncepipe schema``: list, check (offline, exit 1 naming the field), new; register is in
tests/integration/test_user_package.py against the real schema store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.fixtures.user_types import CUSTOMER_MILESTONE_V1, ORDER_PLACED_V1, write_avsc

pytestmark = pytest.mark.usefixtures("forget_user_types")

RUNNER = CliRunner()
# A database nobody listens on: list must still work, check and new never connect.
OFFLINE = {"ONCEPIPE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"}


def run(*args: str, schema_path: str = "") -> tuple[int, str, str]:
    env = {**OFFLINE, "ONCEPIPE_SCHEMA_PATH": schema_path}
    result = RUNNER.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_shipped_and_schema_path_types_without_the_database(tmp_path: Path) -> None:
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    code, out, err = run("schema", "list", "--json", schema_path=str(tmp_path))
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["event_type"], r["version"]) for r in rows] == [
        ("ClickEvent", 1),
        ("ClickEvent", 2),
        ("OrderPlaced", 1),
    ]
    placed = rows[-1]
    assert placed["model"] == "(generated)"
    assert placed["stored"] is None
    assert placed["file"] == str(tmp_path / "order_placed.v1.avsc")
    assert len(placed["fingerprint"]) == 16
    assert "schema store not read" in err


def test_check_passes_compatible_directories(tmp_path: Path) -> None:
    coupon = {"name": "coupon", "type": ["null", "string"], "default": None}
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    write_avsc(tmp_path, "OrderPlaced", 2, [*ORDER_PLACED_V1, coupon])
    code, out, err = run("schema", "check", str(tmp_path))
    assert code == 0, err
    assert out.startswith("OrderPlaced: v1..v2 compatible")


def test_check_exits_1_naming_the_breaking_field(tmp_path: Path) -> None:
    write_avsc(tmp_path, "CustomerMilestone", 1, CUSTOMER_MILESTONE_V1)
    orders_as_text = {"name": "orders", "type": "string"}
    write_avsc(tmp_path, "CustomerMilestone", 2, [*CUSTOMER_MILESTONE_V1[:2], orders_as_text])
    code, _, err = run("schema", "check", str(tmp_path))
    assert code == 1
    assert "v1 -> v2: CustomerMilestone.orders: type changed from long to string" in err


def test_check_refuses_a_changed_logical_type(tmp_path: Path) -> None:
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    # The fingerprint ignores logical types: a defaulted field makes v2 a distinct version.
    coupon = {"name": "coupon", "type": ["null", "string"], "default": None}
    plain_long = [*ORDER_PLACED_V1[:4], {"name": "placed_at", "type": "long"}, coupon]
    write_avsc(tmp_path, "OrderPlaced", 2, plain_long)
    code, _, err = run("schema", "check", str(tmp_path))
    assert code == 1
    assert "OrderPlaced.placed_at: logical type changed from timestamp-millis" in err


def test_check_without_directories_checks_every_known_type(tmp_path: Path) -> None:
    write_avsc(tmp_path, "CustomerMilestone", 1, CUSTOMER_MILESTONE_V1)
    added = {"name": "tier", "type": "string"}
    write_avsc(tmp_path, "CustomerMilestone", 2, [*CUSTOMER_MILESTONE_V1, added])
    code, out, err = run("schema", "check", schema_path=str(tmp_path))
    assert code == 1
    assert "ClickEvent: v1..v2 compatible" in out
    assert "CustomerMilestone.tier: field added without a default" in err


def test_new_writes_the_next_version_from_the_newest_and_never_overwrites(tmp_path: Path) -> None:
    v1 = write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    code, out, err = run("schema", "new", "OrderPlaced", "--dir", str(tmp_path))
    assert code == 0, err
    v2 = tmp_path / "order_placed.v2.avsc"
    assert v2.read_text() == v1.read_text()
    assert f"wrote {v2}" in out
    # Found by its known type (the schema path) rather than --dir: the next one is v3.
    v2.write_text(v2.read_text().replace('"long"', '"double"'))
    code, out, err = run("schema", "new", "order_placed", schema_path=str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "order_placed.v3.avsc").read_text() == v2.read_text()


def test_new_refuses_to_overwrite_a_file(tmp_path: Path) -> None:
    write_avsc(tmp_path / "a", "OrderPlaced", 1, ORDER_PLACED_V1)
    write_avsc(tmp_path / "a", "OrderPlaced", 2, ORDER_PLACED_V1[:-1])
    # Catalog of "a" says the next is v3; put a stray v3 there to collide with.
    stray = tmp_path / "a" / "order_placed.v3.avsc"
    stray.write_text("keep me")
    code, _, _ = run("schema", "new", "OrderPlaced", "--dir", str(tmp_path / "a"))
    assert code != 0
    assert stray.read_text() == "keep me"


def test_new_starts_a_new_type_at_v1_with_its_event_id(tmp_path: Path) -> None:
    code, _, err = run("schema", "new", "OrderShipped", "--dir", str(tmp_path))
    assert code == 0, err
    document = json.loads((tmp_path / "order_shipped.v1.avsc").read_text())
    assert document["name"] == "OrderShipped"
    assert [f["name"] for f in document["fields"]] == ["event_id"]
