"""The cost of the crash-loop attempt record: the oncepipe consumer with it on and off.

``python -m bench.attempt_cost [--runs 1]``: the clicks consumer (``ConsumerRuntime``) at batch
10 and 500 with ``crash_attempts`` 3 (an attempt row committed before every batch,
``synchronous_commit = off``) and 0 (no attempt row); prints events/s and the ratio.
"""

from __future__ import annotations

import argparse

from bench.consume import PARTITIONS, Clock, _fill, _reset, run_until
from bench.env import BenchEnv
from bench.events import EventSet
from bench.services import ServiceCpu
from schemas import Codec

CASES = ((10, 5_000), (500, 40_000))


def _rate(env: BenchEnv, topic: str, total: int, batch: int, crash_attempts: int) -> float:
    _reset(env)
    with env.connect(autocommit=True) as conn:
        conn.execute("TRUNCATE oncepipe.consumer_attempts")
    clock = Clock(ServiceCpu(), total)
    run_until(env, topic, total, clock, batch_size=batch, crash_attempts=crash_attempts)
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
