"""``python -m bench.profile``: where the oncepipe consumer's time goes, with pyinstrument.

Fills a topic with click events, runs the consumer (click handler, batch 500) over them under
pyinstrument and writes ``bench/results/consume-profile.txt`` (text tree, frames under 2%
hidden). pyinstrument samples the Python thread only: librdkafka's threads and the servers
are not in it (their CPU is in the consume tables).
"""

from __future__ import annotations

import argparse
import sys

from bench.consume import PARTITIONS, _fill, _oncepipe
from bench.env import BenchEnv
from bench.events import EventSet
from bench.results import RESULTS_DIR
from bench.services import ServiceCpu
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings
from schemas import Codec


def main(argv: list[str] | None = None) -> int:
    """Profile one consumer run and write the text report."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler  # noqa: PLC0415 - the bench extra
    except ImportError as exc:
        raise SystemExit(
            "bench.profile: pyinstrument is missing (pip install -e '.[bench]')"
        ) from exc
    configure_logging(load_settings(log_level="WARNING"))
    env = BenchEnv()
    with env.topic("profile", PARTITIONS) as topic:
        _fill(env, topic, EventSet.build("click", args.events, Codec.load()))
        profiler = Profiler(interval=0.0005)
        profiler.start()
        sample = _oncepipe(env, topic, args.events, args.batch, ServiceCpu())
        profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    header = (
        f"oncepipe consumer, click handler, batch {args.batch}, {args.events} events: "
        f"{sample.events / sample.wall_s:,.0f} events/s while profiled\n\n"
    )
    path = RESULTS_DIR / "consume-profile.txt"
    path.write_text(header + text)
    print(f"bench.profile: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
