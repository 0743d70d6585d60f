"""Start ``oncepipe ingest`` for the demo: a clients file, an API key file, a free port.

Public names: ``IngestDoor``, ``start_ingest``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from demo.processes import Workers
from ingest import hash_key, new_key

__all__ = ["IngestDoor", "start_ingest"]


@dataclass(frozen=True)
class IngestDoor:
    """A running ingest server: where it listens and the file holding its client's key."""

    url: str
    key_file: Path


def start_ingest(
    workers: Workers, name: str, folder: Path, topic: str, *, run_id: str, naive: bool = False
) -> IngestDoor:
    """Start an ingest server routing ClickEvent to ``topic``; wait until it listens.

    Its client is named after the run: the client is the dedupe namespace, and the simulator's
    seeded keys repeat from run to run, so a client of another run would get its stored answers.
    """
    key = new_key()
    key_file = folder / f"{name}.key"
    key_file.unlink(missing_ok=True)
    key_file.touch(mode=0o600)  # a secret: readable by this user only
    key_file.write_text(key)
    clients = folder / f"{name}-clients.json"
    entry = {
        "name": f"upstream-{run_id}",
        "key_sha256": hash_key(key),
        "event_types": ["ClickEvent"],
    }
    clients.write_text(json.dumps({"clients": [entry]}))
    port_file = folder / f"{name}.port"
    port_file.unlink(missing_ok=True)
    env = {
        "ONCEPIPE_INGEST_CLIENTS_FILE": str(clients),
        "ONCEPIPE_INGEST_TOPICS": json.dumps({"ClickEvent": topic}),
        "ONCEPIPE_INGEST_NAIVE_ENDPOINT": "true" if naive else "false",
        "ONCEPIPE_INGEST_RATE_PER_S": "100000",
        "ONCEPIPE_INGEST_BURST": "100000",
    }
    child = workers.start(name, "ingest", "--port", "0", "--port-file", str(port_file), env=env)
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if not child.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start; see its log")
        time.sleep(0.1)
    return IngestDoor(f"http://127.0.0.1:{int(port_file.read_text())}", key_file)
