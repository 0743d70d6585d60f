"""Encode and decode(+validate) rates of the codec, per core, for a ~90-byte click event.

Run: .venv/bin/python bench/codec_rates.py [--events N] [--batch B] [--repeats R] [--json]

One process, one thread: the rates are per core. Work is done in batches of B events, as a
producer or consumer loop does it, and each batch's results are dropped (a list of 100,000
models would time the garbage collector instead). Each API is timed R times and the best run
is reported; CPU seconds come from process_time, so a busy machine shows as wall > cpu.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import ClickAction, ClickEvent, Codec


def make_events(count: int) -> list[ClickEvent]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    actions = list(ClickAction)
    return [
        ClickEvent(
            event_id=uuid.uuid4(),
            user_id=f"u-{n % 100_000}",
            item_id=f"sku-{n % 50_000}",
            action=actions[n % len(actions)],
            occurred_at=start + timedelta(milliseconds=n),
            session_id=f"s-{n % 10_000}",
            context={"dev": "ios"} if n % 2 else None,
            surface="home",
        )
        for n in range(count)
    ]


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def best_of(repeats: int, count: int, run: Callable[[], None]) -> dict[str, float]:
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return {"events_per_s": count / best_wall, "events_per_cpu_s": count / best_cpu}


def cases(codec: Codec, events: list[ClickEvent], batch: int) -> dict[str, Callable[[], None]]:
    values = [encoded.value for encoded in codec.encode_batch(events)]
    event_batches, value_batches = chunks(events, batch), chunks(values, batch)
    encode, decode, to_model = codec.encode, codec.decode, codec.to_model

    def encode_single() -> None:
        for part in event_batches:
            [encode(e) for e in part]

    def encode_batch() -> None:
        for part in event_batches:
            codec.encode_batch(part)

    def decode_single() -> None:
        for part in value_batches:
            [decode(v) for v in part]

    def decode_validate_single() -> None:
        for part in value_batches:
            [to_model(decode(v)) for v in part]

    def decode_batch() -> None:
        for part in value_batches:
            codec.decode_batch(part)

    if codec.decode_batch(values) != events:  # the timed work must be the real work
        raise SystemExit("decode_batch did not give back the encoded events")
    return {
        "encode (single)": encode_single,
        "encode_batch": encode_batch,
        "decode only, no validation (single)": decode_single,
        "decode + validate (single)": decode_validate_single,
        "decode_batch (decode + validate)": decode_batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="events per batch call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    codec = Codec.load()
    events = make_events(args.events)
    sizes = sorted(len(e.value) for e in codec.encode_batch(events))
    results = {
        name: best_of(args.repeats, args.events, run)
        for name, run in cases(codec, events, args.batch).items()
    }
    median = sizes[len(sizes) // 2]
    if args.json:
        print(json.dumps({"event_bytes": median, "batch": args.batch, "results": results}))
        return
    print(f"click event: median {median} bytes ({sizes[0]}-{sizes[-1]}); {args.events:,} events "
          f"in batches of {args.batch}; best of {args.repeats}")  # fmt: skip
    print(f"{'API':<38} {'events/s':>10} {'events/cpu-s':>13}")
    for name, rates in results.items():
        print(f"{name:<38} {rates['events_per_s']:>10,.0f} {rates['events_per_cpu_s']:>13,.0f}")


if __name__ == "__main__":
    main()
