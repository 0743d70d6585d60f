"""The cost of the crash-loop attempt record: the oncepipe consumer with it on and off.

``python -m bench.attempt_cost [--runs 1]``: the clicks consumer (``ConsumerRuntime``) at batch
10 and 500 with ``crash_attempts`` 3 (an attempt row committed before every batch,
``synchronous_commit = off``) and 0 (no attempt row); prints events/s and the ratio.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence

from bench.consume import PARTITIONS, Clock, _fill, _reset, _Timed
from bench.env import BenchEnv
from bench.events import EventSet
from bench.services import ServiceCpu
from consumers.context import HandlerContext
from consumers.events import InboundEvent
from consumers.handlers.clicks import handle_clicks
from consumers.runtime import ConsumerRuntime
from consumers.settings import ConsumerSettings
from schemas import Codec

CASES = ((10, 5_000), (500, 40_000))


def _rate(env: BenchEnv, topic: str, total: int, batch: int, crash_attempts: int) -> float:
    _reset(env)
    with env.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE oncepipe.consumer_attempts")
    clock = Clock(ServiceCpu(), total)
    settings = ConsumerSettings(
        group=f"bench-{uuid.uuid4().hex[:8]}", topics=(topic,), handler="clicks",
        batch_size=batch, batch_timeout_s=1.0, crash_attempts=crash_attempts,
    )  # fmt: skip
    holder: list[ConsumerRuntime] = []

    def handler(events: Sequence[InboundEvent], tx: HandlerContext) -> None:
        handle_clicks(events, tx)
        if clock.events >= total:
            holder[0].stop()

    runtime = ConsumerRuntime(
        env.settings, settings, decoder=Codec.load(), handler=handler, hooks=_Timed(clock)
    )
    holder.append(runtime)
    runtime.run()
    sample = clock.sample()
    return sample.events / sample.wall_s


def main() -> None:
    """Run each case with the attempt record on and off, interleaved, and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    env = BenchEnv()
    codec = Codec.load()
    topic = env.create_topic("attempts", PARTITIONS)
    try:
        _fill(env, topic, EventSet.build("click", max(t for _, t in CASES), codec))
        print("batch\tevents\ton (ev/s)\toff (ev/s)\ton/off")
        for batch, total in CASES:
            on: list[float] = []
            off: list[float] = []
            for _ in range(args.runs):
                on.append(_rate(env, topic, total, batch, 3))
                off.append(_rate(env, topic, total, batch, 0))
            rate_on, rate_off = max(on), max(off)
            print(f"{batch}\t{total}\t{rate_on:.0f}\t{rate_off:.0f}\t{rate_on / rate_off:.3f}")
    finally:
        env.delete_topic(topic)


if __name__ == "__main__":
    main()
