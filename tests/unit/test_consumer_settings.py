from __future__ import annotations

import pytest

from consumers.settings import ConsumerSettings, load_consumer_settings
from oncepipe.errors import ConfigError


def test_defaults_batch_500_and_a_10_second_session_timeout() -> None:
    settings = ConsumerSettings()
    assert settings.batch_size == 500
    assert settings.group_protocol == "classic"
    assert settings.session_timeout_ms == 10_000  # chosen from bench/failover.py's figures
    assert settings.auto_offset_reset == "earliest"


def test_every_flag_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_GROUP", "recs")
    monkeypatch.setenv("ONCEPIPE_CONSUMER_TOPICS", "events.click, events.view")
    monkeypatch.setenv("ONCEPIPE_CONSUMER_HANDLER", "clicks")
    monkeypatch.setenv("ONCEPIPE_CONSUMER_BATCH_SIZE", "100")
    settings = load_consumer_settings()
    assert settings.group == "recs"
    assert settings.topics == ("events.click", "events.view")
    assert settings.handler == "clicks"
    assert settings.batch_size == 100


def test_flags_given_override_the_environment_and_none_means_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_GROUP", "from-env")
    monkeypatch.setenv("ONCEPIPE_CONSUMER_BATCH_SIZE", "100")
    settings = load_consumer_settings(group="from-flag", batch_size=None)
    assert settings.group == "from-flag"
    assert settings.batch_size == 100


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCEPIPE_CONSUMER_AUTO_OFFSET_RESET", "middle")
    with pytest.raises(ConfigError, match="ONCEPIPE_CONSUMER_AUTO_OFFSET_RESET"):
        load_consumer_settings()


def test_heartbeat_is_a_third_of_the_session_timeout() -> None:
    assert ConsumerSettings(session_timeout_ms=6000).heartbeat_interval_ms() == 2000
