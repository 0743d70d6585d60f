"""``python -m bench.profile``: where the oncepipe consumer's time goes, with pyinstrument.

Fills a topic with click events, runs the consumer (click handler, batch 500) over them under
pyinstrument and writes ``bench/results/consume-profile.txt``: the call tree in percent of
wall time (library frames folded), then the frames with the most self time, libraries shown.
pyinstrument samples the Python thread only: librdkafka's threads and the servers are not in
it (their CPU is in the consume tables).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from bench.consume import PARTITIONS, _fill, _oncepipe
from bench.env import BenchEnv
from bench.events import EventSet
from bench.results import RESULTS_DIR
from bench.services import ServiceCpu
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings
from schemas import Codec

_TOP_FRAMES = 20


def new_profiler(prog: str) -> Any:
    """A pyinstrument sampler at 0.5 ms, or exit saying how to install it (the bench extra)."""
    try:
        from pyinstrument import Profiler  # noqa: PLC0415 - the bench extra
    except ImportError as exc:
        raise SystemExit(f"{prog}: pyinstrument is missing (pip install -e '.[bench]')") from exc
    return Profiler(interval=0.0005)


def main(argv: list[str] | None = None) -> int:
    """Profile one consumer run and write the text report."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", default="consume-profile.txt", help="file in bench/results")
    args = parser.parse_args(argv)
    profiler = new_profiler("bench.profile")
    configure_logging(load_settings(log_level="WARNING"))
    env = BenchEnv()
    with env.topic("profile", PARTITIONS) as topic:
        _fill(env, topic, EventSet.build("click", args.events, Codec.load()))
        profiler.start()
        sample = _oncepipe(env, topic, args.events, args.batch, ServiceCpu())
        profiler.stop()
    tree = profiler.output_text(time="percent_of_total", show_all=False)
    header = (
        f"oncepipe consumer, click handler, batch {args.batch}, {args.events} events: "
        f"{sample.events / sample.wall_s:,.0f} events/s while profiled "
        f"(load average {os.getloadavg()[0]:.1f} at the end)\n\n"
    )
    path = RESULTS_DIR / args.out
    path.write_text(f"{header}{tree}\n{_self_times(profiler)}")
    print(f"bench.profile: wrote {path}", file=sys.stderr)
    return 0


def _self_times(profiler: Any) -> str:
    """The frames with the most self time, every library shown, in percent of wall time.

    The tree folds library frames (psycopg's dumpers, ``re``) into their caller; this list is
    where they show. pyinstrument's own flat view counts some frames twice, hence this walk.
    """
    session = profiler.last_session
    root = session.root_frame() if session else None
    if root is None or root.time <= 0:
        return ""
    totals: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        stack.extend(frame.children)
        if not frame.is_synthetic:
            qualified = (
                f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
            )
            name = f"{qualified}  {frame.file_path_short}:{frame.line_no}"
            totals[name] = totals.get(name, 0.0) + frame.total_self_time
    top = sorted(totals.items(), key=lambda item: -item[1])[:_TOP_FRAMES]
    lines = [f"{100 * t / root.time:5.1f}%  {name}" for name, t in top]
    return "Self time by frame, every library shown (top):\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
