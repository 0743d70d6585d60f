"""``oncepipe.settings.read_settings``: the one translation of pydantic errors into ConfigError."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cli.options import build_settings
from consumers.settings import load_consumer_settings
from oncepipe.errors import ConfigError
from oncepipe.settings import load_settings, read_settings
from producers.settings import RelaySettings

SECRET = "Zq8-s3cret"  # noqa: S105 - a distinctive fake value to search for


class _Knobs(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_KNOBS_", frozen=True, extra="ignore")

    size: int = Field(10, ge=1)
    low: int = 1
    high: int = 2

    @model_validator(mode="after")
    def _ordered(self) -> _Knobs:
        if self.high < self.low:
            raise ValueError("high must be at least low")
        return self


def test_values_come_from_the_environment_and_given_overrides_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_KNOBS_SIZE", "7")
    monkeypatch.setenv("ONCEPIPE_KNOBS_LOW", "3")
    knobs = read_settings(_Knobs, {"size": None, "low": 2, "high": 5})
    assert (knobs.size, knobs.low, knobs.high) == (7, 2, 5)  # None: not given


def test_each_invalid_field_is_named_by_its_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        read_settings(_Knobs, {"size": 0, "low": "many"})
    message = str(caught.value)
    assert message.startswith("invalid configuration: ")
    assert "ONCEPIPE_KNOBS_SIZE: Input should be greater than or equal to 1" in message
    assert "; ONCEPIPE_KNOBS_LOW: " in message


def test_a_check_of_the_whole_model_gives_its_reason_alone() -> None:
    with pytest.raises(ConfigError) as caught:
        read_settings(_Knobs, {"low": 5, "high": 1}, what="knob configuration")
    assert str(caught.value) == "invalid knob configuration: Value error, high must be at least low"


def test_the_error_chains_nothing_that_could_quote_the_input() -> None:
    with pytest.raises(ConfigError) as caught:
        read_settings(_Knobs, {"low": SECRET})
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


@pytest.mark.parametrize(
    ("variable", "load", "prefix"),
    [
        ("ONCEPIPE_IDLE_IN_TRANSACTION_TIMEOUT_MS", load_settings, "invalid configuration: "),
        (
            "ONCEPIPE_CONSUMER_BATCH_SIZE",
            load_consumer_settings,
            "invalid consumer configuration: ",
        ),
        (
            "ONCEPIPE_RELAY_BATCH_SIZE",
            lambda: build_settings(RelaySettings),
            "invalid configuration: ",
        ),
    ],
)
def test_the_three_loaders_report_alike(
    variable: str, load: Callable[[], object], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, f"-{SECRET}")
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value).startswith(f"{prefix}{variable}: ")
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
