"""The dead-letter console: ``oncepipe console`` (README "Dead-letter console").

A small web app over what ``oncepipe status`` and ``oncepipe dlq`` already do: the pipeline's
overview, failure groups, one dead letter, and replay or discard with a dry-run preview, a
confirmation, a rate, the ledger's record of who did it and an audit trail.

- ``serve`` runs it, ``build`` makes the ASGI app (``ConsoleSettings``); ``Indexer`` keeps the
  dead-letter index (``oncepipe.dlq_index``) current;
- ``hash_password``: a line of the password file; ``sync``: index new dead letters now.

Imports the plumbing, the contract, ``producers`` and ``consumers``; only ``cli`` imports it.
"""

from __future__ import annotations

from console.auth import hash_password
from console.index import sync
from console.server import Indexer, build, serve
from console.settings import ConsoleSettings

__all__ = ["ConsoleSettings", "Indexer", "build", "hash_password", "serve", "sync"]
