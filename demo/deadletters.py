"""The demo's dead-letter step, as an operator runs it: list, fix, replay what the fix covers.

1. ``oncepipe dlq list`` shows every dead letter of the run (its tab-separated output is parsed
   for the report and shown aligned in the narration).
2. The fix is the caller's (the catalog learns the items launched during the run).
3. ``oncepipe dlq replay`` re-publishes only the dead letters the fix covers: the clicks the
   handler refused for an unknown item. Corrupt bodies and invalid fields are left alone: no
   fix downstream can make those bytes a valid click.

Public names: ``DlqListing``, ``ReplayResult``, ``list_dead_letters``, ``replay_fixed``.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import dataclass

from demo.items import REFUSAL
from demo.processes import Workers

__all__ = ["DlqListing", "ReplayResult", "list_dead_letters", "replay_fixed"]


@dataclass(frozen=True)
class DlqListing:
    """The output of one ``oncepipe dlq list`` run."""

    command: str
    dlq_topic: str
    header: list[str]
    rows: list[dict[str, str]]

    def ref(self, row: dict[str, str]) -> str:
        """The ``<dlq-topic>:<partition>:<offset>`` of a row (the list shows ``p:o``)."""
        return f"{self.dlq_topic}:{row['dlq']}"

    def by_stage(self) -> dict[str, int]:
        """How many dead letters each failure stage produced."""
        return dict(sorted(Counter(row["stage"] for row in self.rows).items()))

    def text(self) -> str:
        """The output with aligned columns, as a terminal would show it."""
        lines = [self.header, *([row[name] for name in self.header] for row in self.rows)]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.header))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines
        )


@dataclass(frozen=True)
class ReplayResult:
    """What one ``oncepipe dlq replay`` did."""

    command: str
    counts: dict[str, int]
    sent: list[str]
    """Refs of the dead letters that were re-published."""


def list_dead_letters(workers: Workers, dlq_topic: str) -> DlqListing:
    """Run ``oncepipe dlq list`` on the run's dead-letter topic and parse its output."""
    args = ["dlq", "list", "--topic", dlq_topic, "--limit", "10000"]
    lines = workers.run(*args).splitlines()
    if not lines:
        raise RuntimeError(f"`oncepipe {shlex.join(args)}` printed nothing, not even a header")
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:] if line]
    return DlqListing(f"oncepipe {shlex.join(args)}", dlq_topic, header, rows)


def replay_fixed(workers: Workers, dlq_topic: str) -> ReplayResult:
    """Replay the dead letters the catalog handler refused; leave every other one."""
    args = ["dlq", "replay", "--topic", dlq_topic, "--stage", "handle", "--error", REFUSAL]
    data = json.loads(workers.run(*args, "--yes", "--json"))
    sent = [r["ref"] for r in data["replays"] if r["outcome"] == "sent"]
    return ReplayResult(f"oncepipe {shlex.join([*args, '--yes'])}", dict(data["counts"]), sent)
