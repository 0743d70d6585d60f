"""Taking an attempt back while PostgreSQL is down never ends the worker.

In a chaos run a worker exited 1 when PostgreSQL stopped (immediate mode) during a batch: the
batch failed as transient, and the take-back of its attempt then could not even connect. The
connection error (``DatabaseUnavailableError``, raised by ``connect`` before any statement)
escaped the handler that caught only driver errors. The take-back must be remembered in
memory instead, as for a session lost mid-statement.
"""

from __future__ import annotations

import uuid

from consumers.attempts import Attempts
from oncepipe.db import connect
from oncepipe.settings import load_settings

# Nothing listens on port 1: connecting fails at once, as to a server that is down.
DOWN = "postgresql://oncepipe@127.0.0.1:1/oncepipe?connect_timeout=2"


def test_a_take_back_that_cannot_connect_is_kept_in_memory() -> None:
    settings = load_settings(database_url=DOWN)
    attempts = Attempts(
        lambda: connect(settings, "oncepipe-consumer-attempts:g"), "g", uuid.uuid4(), limit=3
    )
    attempts.survived({("clicks", 0): 120, ("clicks", 1): None})
    # Remembered: the next attempt at offset 120 of clicks[0] counts 0.
    assert attempts._survived == {("clicks", 0, 120)}
