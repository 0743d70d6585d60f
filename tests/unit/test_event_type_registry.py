"""A user's own event types: the decorator, schema-path directories, entry points, refusals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from consumers import resolve
from consumers.dlq import lenient_codec
from oncepipe.errors import ConfigError
from oncepipe.settings import Settings
from schemas import (
    CatalogError,
    ClickEvent,
    Codec,
    Event,
    EventTypeConflictError,
    ModelMismatchError,
    UtcMillis,
    event_type,
    known_types,
    load_entry_points,
    register_directories,
)
from schemas.avro_io import fingerprint
from schemas.registry import unregister
from tests.fixtures.user_types import (
    CUSTOMER_MILESTONE_V1,
    ORDER_PLACED_V1,
    write_avsc,
    write_shop_package,
)

pytestmark = pytest.mark.usefixtures("forget_user_types")

PLACED_AT = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)


def declare_order_placed(directory: Path) -> Any:  # the model class; Any lets mypy take its fields
    @event_type(directory)
    class OrderPlaced(Event):
        event_type: ClassVar[str] = "OrderPlaced"
        key_field: ClassVar[str] = "customer_id"
        order_id: str
        customer_id: str
        amount_cents: int
        placed_at: UtcMillis

    return OrderPlaced


def test_a_decorated_model_is_encoded_and_decoded_by_the_loaded_codec(tmp_path: Path) -> None:
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    model = declare_order_placed(tmp_path)
    event = model(
        event_id=uuid.uuid4(),
        order_id="o1",
        customer_id="c7",
        amount_cents=250,
        placed_at=PLACED_AT,
    )
    codec = Codec.load()
    encoded = codec.encode(event)
    assert (encoded.event_type, encoded.key) == ("OrderPlaced", b"c7")
    assert codec.to_model(codec.decode(encoded.value)) == event
    assert known_types()["OrderPlaced"].origin == "decorator"
    # The shipped types stay, and the store would receive the new type's writer schema.
    assert {t for t, _ in codec.writer_schemas().values()} == {"ClickEvent", "OrderPlaced"}


def test_an_older_version_of_a_user_type_is_read_into_the_newest_model(tmp_path: Path) -> None:
    coupon = {"name": "coupon", "type": ["null", "string"], "default": None}
    v1 = write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    write_avsc(tmp_path, "OrderPlaced", 2, [*ORDER_PLACED_V1, coupon])

    @event_type(tmp_path)
    class OrderPlaced(Event):
        event_type: ClassVar[str] = "OrderPlaced"
        key_field: ClassVar[str] = "customer_id"
        order_id: str
        customer_id: str
        amount_cents: int
        placed_at: UtcMillis
        coupon: str | None = None

    codec = Codec.load()
    event = OrderPlaced(
        event_id=uuid.uuid4(), order_id="o", customer_id="c", amount_cents=1, placed_at=PLACED_AT
    )
    old = codec.encode_with(event, fingerprint(v1.read_text()))
    assert codec.to_model(codec.decode(old.value)) == event


def test_a_model_whose_fields_differ_from_the_newest_schema_is_refused_naming_them(
    tmp_path: Path,
) -> None:
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    with pytest.raises(ModelMismatchError) as caught:

        @event_type(tmp_path)
        class OrderPlaced(Event):
            event_type: ClassVar[str] = "OrderPlaced"
            key_field: ClassVar[str] = "customer_id"
            order_id: str
            customer_id: str
            amount: int
            placed_at: UtcMillis

    message = str(caught.value)
    assert "['amount_cents'] are in the schema but not the model" in message
    assert "['amount'] are in the model but not the schema" in message
    assert "order_placed.v1.avsc" in message
    assert "OrderPlaced" not in known_types()


def test_a_type_without_schema_files_is_refused_with_the_file_to_write(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"no order_placed\.v1\.avsc in .*oncepipe schema new"):
        declare_order_placed(tmp_path)


def test_a_key_field_that_is_not_a_field_is_refused(tmp_path: Path) -> None:
    write_avsc(tmp_path, "CustomerMilestone", 1, CUSTOMER_MILESTONE_V1)
    with pytest.raises(CatalogError, match=r"key_field 'customer' is not one of its fields"):

        @event_type(tmp_path)
        class CustomerMilestone(Event):
            event_type: ClassVar[str] = "CustomerMilestone"
            key_field: ClassVar[str] = "customer"
            customer_id: str
            orders: int


def test_one_type_name_with_two_different_histories_is_refused(tmp_path: Path) -> None:
    write_avsc(tmp_path / "a", "OrderPlaced", 1, ORDER_PLACED_V1)
    write_avsc(tmp_path / "b", "OrderPlaced", 1, ORDER_PLACED_V1[:-1])
    declare_order_placed(tmp_path / "a")
    with pytest.raises(EventTypeConflictError, match=r"OrderPlaced is registered twice") as caught:
        register_directories([tmp_path / "b"])
    assert str(tmp_path / "a") in str(caught.value)
    assert str(tmp_path / "b") in str(caught.value)


def test_a_user_type_cannot_take_a_shipped_name_with_other_schemas(tmp_path: Path) -> None:
    fields = [{"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}}]
    write_avsc(tmp_path, "ClickEvent", 1, fields)
    with pytest.raises(EventTypeConflictError, match=r"ClickEvent is registered twice"):
        register_directories([tmp_path])
    assert known_types()["ClickEvent"].model is ClickEvent


def test_registering_the_same_model_again_is_harmless(tmp_path: Path) -> None:
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    declare_order_placed(tmp_path)
    again = declare_order_placed(tmp_path)  # a module imported twice
    assert known_types()["OrderPlaced"].model is again


def test_a_schema_path_type_gets_a_model_generated_from_its_newest_version(
    tmp_path: Path,
) -> None:
    status = {"type": "enum", "name": "Status", "symbols": ["new", "paid"]}
    fields = [
        *ORDER_PLACED_V1,
        {"name": "status", "type": status, "default": "new"},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "note", "type": ["null", "string"], "default": None},
    ]
    write_avsc(tmp_path, "OrderPlaced", 1, fields, **{"oncepipe.key_field": "customer_id"})
    [entry] = register_directories([tmp_path])
    assert entry.generated
    model = entry.model
    assert (model.event_type, model.key_field) == ("OrderPlaced", "customer_id")
    assert list(model.model_fields) == [f["name"] for f in fields]
    event = model.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "order_id": "o",
            "customer_id": "c",
            "amount_cents": 3,
            "placed_at": PLACED_AT,
        }
    )
    codec = Codec.load()
    assert codec.to_model(codec.decode(codec.encode(event).value)) == event
    with pytest.raises(ValueError, match="status"):
        model.model_validate({**event.model_dump(), "status": "lost"})


def test_a_written_model_takes_the_place_of_a_generated_one_either_way(tmp_path: Path) -> None:
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    register_directories([tmp_path])
    written = declare_order_placed(tmp_path)
    assert known_types()["OrderPlaced"].model is written
    register_directories([tmp_path])  # the schema path read again after the import
    assert known_types()["OrderPlaced"].model is written
    assert known_types()["OrderPlaced"].origin == "decorator"


def test_a_generated_model_keys_by_event_id_unless_the_schema_names_a_key(tmp_path: Path) -> None:
    write_avsc(tmp_path, "CustomerMilestone", 1, CUSTOMER_MILESTONE_V1)
    [entry] = register_directories([tmp_path])
    assert entry.model.key_field == "event_id"


def test_a_schema_path_entry_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"is not a directory; ONCEPIPE_SCHEMA_PATH lists"):
        register_directories([tmp_path / "missing"])


def test_an_incompatible_newest_version_is_refused_by_the_codec_at_load(tmp_path: Path) -> None:
    write_avsc(tmp_path, "CustomerMilestone", 1, CUSTOMER_MILESTONE_V1)
    changed = [*CUSTOMER_MILESTONE_V1[:2], {"name": "orders", "type": "string"}]
    write_avsc(tmp_path, "CustomerMilestone", 2, changed)
    register_directories([tmp_path])
    with pytest.raises(CatalogError, match=r"v1 -> v2: CustomerMilestone\.orders: type changed"):
        Codec.load()


def installed_distribution(root: Path, value: str) -> None:
    """A distribution on ``root`` declaring one ``oncepipe.event_types`` entry point."""
    info = root / "shop_types-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shop-types\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[oncepipe.event_types]\nshop = {value}\n")


@pytest.fixture
def fresh_entry_points() -> Iterator[None]:
    load_entry_points.cache_clear()
    yield
    load_entry_points.cache_clear()


@pytest.mark.usefixtures("fresh_entry_points")
def test_an_installed_entry_point_registers_its_types_when_the_codec_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_shop_package(tmp_path)
    installed_distribution(tmp_path, "shop.events")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "OrderPlaced" not in known_types()
    codec = Codec.load()  # imports shop.events through the entry point
    assert codec.newest_fingerprint("OrderPlaced")
    assert known_types()["CustomerMilestone"].model.__module__ == "shop.events"


@pytest.mark.usefixtures("fresh_entry_points")
def test_an_entry_point_that_cannot_be_imported_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed_distribution(tmp_path, "shop.gone")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CatalogError, match=r"entry point shop = shop\.gone \(group oncepipe"):
        Codec.load()


def test_a_handler_module_with_a_refused_model_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_shop_package(tmp_path)
    events = tmp_path / "shop" / "events.py"
    events.write_text(events.read_text().replace("    orders: int\n", "    count: int\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"\['orders'\] are in the schema but not the model"):
        resolve("shop.handlers:handlers")  # exit 2 from oncepipe consume: fix, do not retry


def test_the_dead_letter_tools_codec_knows_the_schema_path_types(tmp_path: Path) -> None:
    write_avsc(tmp_path, "OrderPlaced", 1, ORDER_PLACED_V1)
    writer = register_directories([tmp_path])[0].model
    value = (
        Codec.load()
        .encode(
            writer.model_validate(
                {
                    "event_id": uuid.uuid4(),
                    "order_id": "o",
                    "customer_id": "c",
                    "amount_cents": 1,
                    "placed_at": PLACED_AT,
                }
            )
        )
        .value
    )
    unregister("OrderPlaced")
    settings = Settings(schema_path=str(tmp_path), database_url="postgresql://x@127.0.0.1:1/x")
    codec = lenient_codec(settings)  # what oncepipe dlq show decodes values with
    assert codec.to_model(codec.decode(value)).event_type == "OrderPlaced"
