"""The HTTP door for upstream services: ``oncepipe ingest`` (README "HTTP ingest").

Upstreams ``POST /v1/events/{type}`` (or ``.../batch``) with an API key and an
Idempotency-Key; each accepted request writes its outbox rows and its idempotency record in
one PostgreSQL transaction, with event ids derived from (client, key, index), so a retry can
never become a second event.

- ``serve`` runs the server, ``build`` makes the ASGI app (``IngestSettings``);
- ``load_clients``, ``hash_key``, ``new_key``: the clients file (hashed API keys, grants);
- ``derive_event_id``: the id of an ingested event; ``openapi_document``;
- ``REPLAY_HEADER``: the header marking a replayed response.

Imports the plumbing, the contract and ``producers`` (``enqueue``), never ``consumers``.
"""

from __future__ import annotations

from ingest.app import REPLAY_HEADER
from ingest.clients import hash_key, load_clients, new_key
from ingest.openapi import openapi_document
from ingest.server import build, serve
from ingest.settings import IngestSettings
from ingest.store import derive_event_id

__all__ = [
    "REPLAY_HEADER",
    "IngestSettings",
    "build",
    "derive_event_id",
    "hash_key",
    "load_clients",
    "new_key",
    "openapi_document",
    "serve",
]
