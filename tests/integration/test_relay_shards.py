"""Several relays publish the outbox at once: each shard leased by one live relay at a time.

The relays here run in-process with long leases, so a slow machine never lets one run out by
itself; a relay that stopped renewing is made by moving its lease and heartbeat into the past.
Every wait is on an observed state, never on time alone.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from oncepipe.settings import Settings
from producers import read_owners
from producers.outbox import SHARDS
from producers.relay import Relay
from producers.settings import ProducerSettings, RelaySettings
from tests.fixtures.kafka import read_topic
from tests.fixtures.relay import ONCEPIPE, RelayThread, wait_drained, worker_env
from tests.integration.test_outbox_relay import click, enqueue_all, order_by_key

pytestmark = pytest.mark.integration


def owners(settings: Settings) -> dict[int, str | None]:
    """Shard -> relay holding a current lease (None: free or expired)."""
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        return {o.shard: o.owner if o.live else None for o in read_owners(conn)}


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def shares(settings: Settings) -> dict[str | None, int]:
    """Relay -> how many shards it holds (None: shards nobody holds)."""
    counts: dict[str | None, int] = defaultdict(int)
    for owner in owners(settings).values():
        counts[owner] += 1
    return dict(counts)


def claims_of_live_leases(settings: Settings) -> list[tuple[Any, ...]]:
    """Claims (written by the database's trigger) that took a lease still within its term."""
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT shard, owner, previous_owner, previous_lease_until, at"
            " FROM oncepipe.relay_shard_claims"
            " WHERE owner IS NOT NULL AND previous_owner IS NOT NULL"
            "   AND previous_owner <> owner AND previous_lease_until >= at"
        ).fetchall()


@pytest.fixture
def relays(settings: Settings) -> Iterator[Callable[..., RelayThread]]:
    """In-process relays with a 60 s lease (stopped after the test)."""
    started: list[RelayThread] = []

    def start(**options: Any) -> RelayThread:
        relay_settings = RelaySettings(
            **{"poll_interval_s": 0.2, "lease_s": 60.0, "batch_size": 50, **options}
        )
        thread = RelayThread(settings, relay_settings)
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop()


def test_one_keys_rows_share_a_shard_and_keys_spread_over_every_shard(settings: Settings) -> None:
    topic = "shards.spread"
    events = [click(f"user-{n % 200}", n) for n in range(400)]
    enqueue_all(settings, topic, events)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        found = conn.execute("SELECT key, shard FROM oncepipe.outbox").fetchall()
    by_key: dict[bytes, set[int]] = defaultdict(set)
    for key, shard in found:
        by_key[bytes(key)].add(shard)
    assert all(len(shards) == 1 for shards in by_key.values())
    assert {shard for shards in by_key.values() for shard in shards} == set(range(SHARDS))


def test_three_relays_share_the_shards_and_publish_every_row_once_in_key_order(
    settings: Settings, make_topic: Callable[..., str], relays: Callable[..., RelayThread]
) -> None:
    started = [relays() for _ in range(3)]
    ids = {t.relay.relay_id for t in started}
    # ceil(16 / 3) = 6 at most each: 6 + 6 + 4 once every relay saw the other two.
    wait_for(
        "three relays holding every shard, 4 to 6 each",
        lambda: (
            set(shares(settings)) == ids and all(4 <= n <= 6 for n in shares(settings).values())
        ),
    )
    topic = make_topic()
    events = [click(f"user-{n % 40}", n) for n in range(900)]
    enqueue_all(settings, topic, events)  # while the three relays run
    wait_drained(settings)

    records = read_topic(settings.kafka_bootstrap_servers, topic, expected=len(events))
    assert len(records) == len(events)  # no row published twice
    expected: dict[bytes | None, list[str]] = defaultdict(list)
    for event in events:
        expected[event.user_id.encode()].append(str(event.event_id))
    assert order_by_key(records) == expected
    assert all(t.relay.published > 0 for t in started)  # all three published
    assert sum(t.relay.published for t in started) == len(events)
    assert claims_of_live_leases(settings) == []


def test_a_joining_relay_gets_half_and_a_stopped_one_hands_its_shards_back_at_once(
    settings: Settings, relays: Callable[..., RelayThread]
) -> None:
    first = relays()  # a long lease: only a clean release can move shards quickly
    wait_for(
        "the first relay holding every shard",
        lambda: shares(settings) == {first.relay.relay_id: SHARDS},
    )
    second = relays()
    halves = {first.relay.relay_id: SHARDS // 2, second.relay.relay_id: SHARDS // 2}
    wait_for("the shards spread over both relays", lambda: shares(settings) == halves)

    second.stop()  # SIGTERM's path: releases its shards, leaves the members
    wait_for(
        "the first relay holding every shard again",
        lambda: shares(settings) == {first.relay.relay_id: SHARDS},
        timeout=30.0,
    )
    assert claims_of_live_leases(settings) == []


def run_out(settings: Settings, relay: Relay) -> None:
    """A lease term passes without ``relay`` renewing: its leases and heartbeat are over."""
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute(
            "UPDATE oncepipe.relay_shards SET lease_until = now() - interval '1 second'"
            " WHERE owner = %s",
            (relay.relay_id,),
        )
        conn.execute(
            "UPDATE oncepipe.relay_members SET heartbeat_at = now() - interval '1 hour'"
            " WHERE relay_id = %s",
            (relay.relay_id,),
        )


def test_a_relay_that_stops_renewing_loses_its_shards_after_the_lease_and_gets_a_share_back(
    settings: Settings, make_topic: Callable[..., str]
) -> None:
    """Driven pass by pass: ``stalled`` renews nothing while ``other`` takes over."""
    topic = make_topic()
    lease = RelaySettings(lease_s=60.0, batch_size=1000)
    stalled = Relay(settings, lease, ProducerSettings(linger_ms=1))
    other = Relay(settings, lease, ProducerSettings(linger_ms=1))
    try:
        enqueue_all(settings, topic, [click(f"user-{n}", n) for n in range(20)])
        assert stalled.run_once() == 20
        assert stalled.shards == frozenset(range(SHARDS))
        assert other.run_once() == 0
        assert other.shards == frozenset()

        # The stalled relay renews nothing; once its leases ran out the other takes them all.
        run_out(settings, stalled)
        assert other.run_once() == 0
        assert other.shards == frozenset(range(SHARDS))
        later = [click(f"user-{n}", n) for n in range(20, 40)]
        enqueue_all(settings, topic, later)
        assert other.run_once() == 20
        assert stalled.run_once() == 0  # back: it learns it lost every shard, publishes none
        assert stalled.shards == frozenset()

        # Both live now: the other gives back half, the stalled one claims it.
        assert other.run_once() == 0
        assert len(other.shards) == SHARDS // 2
        assert stalled.run_once() == 0
        assert stalled.shards == frozenset(range(SHARDS)) - other.shards
        records = read_topic(settings.kafka_bootstrap_servers, topic, expected=40)
        assert len(records) == 40
        assert claims_of_live_leases(settings) == []
    finally:
        for relay in (stalled, other):
            relay.request_stop()
            relay.run()


def test_status_shows_which_relay_holds_which_shard(
    settings: Settings, relays: Callable[..., RelayThread]
) -> None:
    started = [relays() for _ in range(2)]
    halves = {t.relay.relay_id: SHARDS // 2 for t in started}
    wait_for("the shards spread over both relays", lambda: shares(settings) == halves)

    done = subprocess.run(
        [ONCEPIPE, "status", "--json"],
        check=False,
        env=worker_env(settings),
        capture_output=True,
        timeout=60,
    )
    shards = json.loads(done.stdout)["relay_shards"]
    held = {s["shard"]: s["owner"] for s in shards if s["live"]}
    assert held == owners(settings)
    text = subprocess.run(
        [ONCEPIPE, "status"],
        check=False,
        env=worker_env(settings),
        capture_output=True,
        timeout=60,
        text=True,
    ).stdout
    for thread in started:
        mine = sorted(s for s, owner in held.items() if owner == thread.relay.relay_id)
        assert f"relay {thread.relay.relay_id}: shards {','.join(map(str, mine))}" in text
