"""Handlers shipped with oncepipe, each registered by name in ``consumers.registry``.

- ``handle_clicks`` (``--handler clicks``): stores click events and keeps exact per-item
  and per-user-item click counters.
"""

from __future__ import annotations

from consumers.handlers.clicks import handle_clicks

__all__ = ["handle_clicks"]
