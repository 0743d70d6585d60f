"""``python -m bench.peer_oncepipe``: the oncepipe side of the peer comparison, one run.

Runs ``ConsumerRuntime`` with ``--handler`` (default ``bench.peer:raw_rows``, resolved like
``oncepipe consume --handler``) over ``--topic`` as a fresh ``--group`` until ``--events``
records are committed (duplicates included: a committed batch moves past them). Speaks the
same protocol on stdout as ``bench/peer_quix_app.py``: the line ``first`` when the first
records are in hand (the first call of the decoder), ``last`` when the transaction holding the
last row committed, then one JSON line with ``events``, ``wall_s`` and ``cpu_s`` between the
two (``time.process_time``: every thread, librdkafka's too) and ``transactions`` (batches
committed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from consumers.registry import resolve
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.hooks import BatchCommitted, NoHooks
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings
from schemas import Codec


class Marks:
    """Wall and CPU clock at the first records in hand and at the last row committed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.rows = 0
        self.transactions = 0
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None

    def start(self) -> None:
        """The first records are in hand (called on every batch; only the first counts)."""
        if self.first is None:
            self.first = (time.perf_counter(), time.process_time())
            print("first", flush=True)

    def committed(self, rows: int) -> bool:
        """``rows`` more rows are committed; True once all of them are."""
        self.rows += rows
        self.transactions += 1
        if self.last is None and self.rows >= self.total:
            self.last = (time.perf_counter(), time.process_time())
            print("last", flush=True)
        return self.last is not None

    def summary(self) -> dict[str, float]:
        """The run as plain data (after ``last``)."""
        if self.first is None or self.last is None:
            raise RuntimeError(f"the run ended after {self.rows} of {self.total} rows")
        return {
            "events": self.rows,
            "wall_s": self.last[0] - self.first[0],
            "cpu_s": self.last[1] - self.first[1],
            "transactions": self.transactions,
        }


class MarkingDecoder:
    """``Codec`` that marks the start of the run on its first ``decode_batch``."""

    def __init__(self, codec: Codec, marks: Marks) -> None:
        self._codec = codec
        self._marks = marks

    def decode_batch(self, values: list[bytes]) -> Sequence[BaseModel | Exception]:
        """Mark, then decode as the runtime would."""
        self._marks.start()
        return self._codec.decode_batch(values)


class CountingHooks(NoHooks):
    """Counts the rows of each committed batch; ``stop`` once all of them are."""

    def __init__(self, marks: Marks, stop: Callable[[], None]) -> None:
        self._marks = marks
        self._stop = stop

    def batch_committed(self, batch: BatchCommitted) -> None:
        """Called after COMMIT, as the runtime's call of ``apply_batch`` returns."""
        # Records, duplicates included, as the other peers count them.
        if self._marks.committed(batch.events):
            self._stop()


def main(argv: list[str] | None = None) -> int:
    """One run; exit 0 once every row is committed."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer_oncepipe")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--handler", default="bench.peer:raw_rows")
    args = parser.parse_args(argv)
    settings = load_settings(log_level="WARNING")
    configure_logging(settings)
    marks = Marks(args.events)
    consumer_settings = ConsumerSettings(
        group=args.group, topics=(args.topic,), handler=args.handler, batch_size=args.batch_size,
    )  # fmt: skip
    runtime = ConsumerRuntime(
        settings,
        consumer_settings,
        decoder=MarkingDecoder(Codec.load(), marks),
        handler=resolve(args.handler),
        hooks=CountingHooks(marks, lambda: runtime.stop()),  # noqa: PLW0108 - bound below
    )
    runtime.run()
    print(json.dumps(marks.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
