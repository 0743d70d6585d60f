from __future__ import annotations

import pytest

from oncepipe.errors import ConfigError
from oncepipe.settings import load_settings


def test_settings_are_read_from_oncepipe_prefixed_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("ONCEPIPE_DATABASE_URL", "postgresql://app:s3cret@db:5432/app")
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == "broker:9092"
    assert settings.database_url.get_secret_value() == "postgresql://app:s3cret@db:5432/app"


def test_printed_settings_mask_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCEPIPE_DATABASE_URL", "postgresql://app:s3cret@db:5432/app")
    masked = load_settings().masked()
    assert masked["database_url"] == "postgresql://app:***@db:5432/app"
    assert "s3cret" not in repr(load_settings())


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCEPIPE_IDLE_IN_TRANSACTION_TIMEOUT_MS", "-5")
    with pytest.raises(ConfigError, match="ONCEPIPE_IDLE_IN_TRANSACTION_TIMEOUT_MS"):
        load_settings()
