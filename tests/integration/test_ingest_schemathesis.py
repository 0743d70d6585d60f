"""schemathesis against the live ingest server: no 5xx, every answer as its OpenAPI document says.

Bounded by examples (``--max-examples``) and seeded, so it takes seconds and repeats.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.ingest import IngestServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = ",".join(
    ["not_a_server_error", "response_schema_conformance", "status_code_conformance",
     "content_type_conformance"]
)  # fmt: skip


def test_generated_requests_get_no_5xx_and_documented_answers(
    ingest_server: Callable[..., IngestServer], tmp_path: Path
) -> None:
    server = ingest_server(
        args=["--import", "orders_contract"],
        ONCEPIPE_INGEST_RATE_PER_S="10000",
        ONCEPIPE_INGEST_BURST="10000",
    )
    run = subprocess.run(
        [SCHEMATHESIS, "run", f"{server.url}/openapi.json",
         "-H", f"Authorization: Bearer {server.keys['web']}",
         "--checks", CHECKS, "--max-examples", "25", "--seed", "24", "--no-color"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,  # its cache folder (.schemathesis) goes there, not into the checkout
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if "{" in line]
    statuses = Counter(line["status"] for line in lines if line.get("component") == "ingest.access")
    assert max(statuses) < 500, statuses
    assert statuses[202] > 0, statuses  # accepted bodies
    assert statuses[422] > 0, statuses  # and refused ones
