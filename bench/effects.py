"""``python -m bench.effects``: an oncepipe consumer that logs when each effect committed.

Runs ``ConsumerRuntime`` with the click handler and appends ``<event_id> <committed>
<read> <polling>`` (unix times) for every event of a batch right after that batch's
transaction committed (the runtime's ``batch_committed`` hook): when the batch committed, when
it was read and decoded (the ``consumer.before_transaction`` point) and when the loop step that
read it started polling (its ``heartbeat``). Stops on SIGTERM. Used by the end-to-end latency
benchmark.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from consumers.handlers.clicks import handle_clicks
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from oncepipe.hooks import BatchCommitted, NoHooks
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings
from oncepipe.signals import install_stop_handlers
from schemas import Codec


def main(argv: list[str] | None = None) -> int:
    """Consume ``--topic`` as ``--group`` until SIGTERM, logging effect commit times."""
    parser = argparse.ArgumentParser(prog="python -m bench.effects")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-timeout", type=float, default=0.05)
    args = parser.parse_args(argv)
    settings = load_settings(log_level="WARNING")
    configure_logging(settings)
    consumer_settings = ConsumerSettings(
        group=args.group, topics=(args.topic,), handler="clicks",
        batch_size=args.batch_size, batch_timeout_s=args.batch_timeout,
    )  # fmt: skip
    with open(args.out, "a", buffering=1) as out:  # noqa: PTH123 - a line-buffered log
        runtime = ConsumerRuntime(
            settings, consumer_settings, decoder=Codec.load(), handler=handle_clicks,
            hooks=_CommitLog(out),
        )  # fmt: skip
        install_stop_handlers(runtime.stop)
        runtime.run()
    return 0


class _CommitLog(NoHooks):
    """Appends ``<event_id> <committed> <read> <polling>`` for each event of a committed batch."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._polling = self._read = 0.0

    def heartbeat(self) -> None:
        self._polling = time.time()  # a loop step starts: it polls next

    def point(self, name: str) -> None:
        if name == "consumer.before_transaction":
            self._read = time.time()

    def batch_committed(self, batch: BatchCommitted) -> None:
        now = time.time()
        times = f"{now:.6f} {self._read:.6f} {self._polling:.6f}"
        self._out.write("".join(f"{event_id} {times}\n" for event_id in batch.event_ids))


if __name__ == "__main__":
    sys.exit(main())
