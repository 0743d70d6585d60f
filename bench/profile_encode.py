"""``python -m bench.profile_encode``: where the producer's time goes from event models to Kafka.

Encodes click events (``Codec.encode``), builds their headers (``event_headers``) and records,
and sends them with ``EventProducer.send`` to a fresh topic, in chunks of 1,000, under
pyinstrument (sampling: a deterministic profiler's per-call cost would penalise code made of
small calls). Writes ``bench/results/encode-profile-<label>.txt``: the rate and the process
CPU per event while profiled, the call tree in percent of the run, then the frames with the
most self time, libraries shown. librdkafka's threads are not in the samples.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.env import BenchEnv
from bench.events import make_events
from bench.produce import CHUNK, frozen_input
from bench.profile import _self_times, new_profiler
from bench.results import RESULTS_DIR
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings
from producers.outbox import event_headers
from producers.producer import Delivery, EventProducer, OutgoingRecord
from producers.settings import ProducerSettings
from schemas import Codec


def main(argv: list[str] | None = None) -> int:
    """Profile one encode-and-send run and write the text report."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_encode")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--kind", default="click", choices=("click", "click-2k"))
    parser.add_argument("--label", default="after")
    args = parser.parse_args(argv)
    profiler = new_profiler("bench.profile_encode")
    configure_logging(load_settings(log_level="WARNING"))
    env = BenchEnv()
    codec = Codec.load()
    events = make_events(args.kind, args.events)
    failed: list[Delivery] = []
    with env.topic("profile-encode") as topic:
        producer = EventProducer(env.settings, ProducerSettings())
        producer.send_all([OutgoingRecord(0, topic, None, b"warm-up")])

        def run() -> None:
            for start in range(0, len(events), CHUNK):
                chunk = codec.encode_batch(events[start : start + CHUNK])
                records = [
                    OutgoingRecord(start + n, topic, e.key, e.value, event_headers(e))
                    for n, e in enumerate(chunk)
                ]
                producer.send(records, lambda d: None if d.ok else failed.append(d))
            producer.flush(120)

        # Once without the profiler: its hook costs per Python call, so it inflates code made
        # of many small calls (a compiled writer) more than one C call (fastavro). The input
        # is frozen out of the collector as in bench.produce.
        with frozen_input():
            plain_cpu = time.process_time()
            run()
            plain_cpu = time.process_time() - plain_cpu
            began, began_cpu = time.perf_counter(), time.process_time()
            profiler.start()
            run()
            profiler.stop()
            wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        producer.close()
    if failed:
        raise SystemExit(f"bench.profile_encode: {len(failed)} deliveries failed")
    tree = profiler.output_text(time="percent_of_total", show_all=False)
    header = (
        f"oncepipe encode + headers + EventProducer.send, {args.kind}, {args.events} events, "
        f"chunks of {CHUNK}. Process CPU per event (librdkafka's threads included): "
        f"{plain_cpu / args.events * 1e6:.1f} µs unprofiled, "
        f"{cpu / args.events * 1e6:.1f} µs profiled ({args.events / wall:,.0f} events/s)\n\n"
    )
    path = RESULTS_DIR / f"encode-profile-{args.label}.txt"
    path.write_text(header + _strip_paths(f"{tree}\n{_self_times(profiler)}"))
    print(f"bench.profile_encode: wrote {path}", file=sys.stderr)
    return 0


def _strip_paths(text: str) -> str:
    """Machine-independent file names: relative to the project and to the environment."""
    for prefix in (f"{Path.cwd()}/", f"{sys.prefix}/", f"{sys.base_prefix}/"):
        text = text.replace(prefix, "")
    return text


if __name__ == "__main__":
    sys.exit(main())
