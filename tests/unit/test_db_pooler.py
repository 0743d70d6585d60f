"""What a connection sends, and who refuses to start, per ``ONCEPIPE_DATABASE_POOLER``."""

from __future__ import annotations

import pytest

from oncepipe.db import _connect_kwargs, require_session
from oncepipe.errors import ConfigError
from oncepipe.settings import Settings


def test_a_direct_connection_sends_its_session_options() -> None:
    kwargs = _connect_kwargs(Settings(), "x")
    assert "default_transaction_isolation=read\\ committed" in kwargs["options"]
    assert "prepare_threshold" not in kwargs


@pytest.mark.parametrize("pooler", ["session", "transaction"])
def test_behind_pgbouncer_no_options_are_sent(pooler: str) -> None:
    kwargs = _connect_kwargs(Settings(database_pooler=pooler), "x")
    assert "options" not in kwargs
    assert ("prepare_threshold" in kwargs) == (pooler == "transaction")


def test_only_transaction_pooling_refuses_a_session_component() -> None:
    require_session(Settings(database_pooler="session"), "the relay", "LISTEN")
    with pytest.raises(ConfigError, match="the relay needs LISTEN"):
        require_session(Settings(database_pooler="transaction"), "the relay", "LISTEN")
