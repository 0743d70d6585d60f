"""Every fault kind the harness injects, each acting on a live pipeline.

A fault returns a ``FaultRecord`` saying what it hit. Faults run one at a time (the scheduler
waits for one to finish); the supervisor restarts workers that die on their own meanwhile.

Public names: ``FaultRecord``, ``Injector``, ``CONSUMER_CRASH_POINTS``, ``RELAY_CRASH_POINTS``.
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg.rows import TupleRow

from oncepipe.kafka import AdminClient
from producers.outbox import enqueue_record, event_headers
from schemas import ClickAction, ClickEvent, Codec
from tests.faults.chaos.config import FaultKind
from tests.faults.chaos.hostile_faults import RecordFaults
from tests.faults.chaos.network import Network
from tests.faults.chaos.pipeline import Pipeline
from tests.faults.chaos.poison_faults import PoisonFaults
from tests.faults.chaos.queue_faults import QueueFaults
from tests.faults.chaos.relay_faults import RelayFaults
from tests.faults.chaos.workers import Proc, Role
from tests.faults.leaders import await_in_sync, leader_of
from tests.faults.netproxy import TcpProxy

__all__ = ["CONSUMER_CRASH_POINTS", "RELAY_CRASH_POINTS", "FaultRecord", "Injector"]

CONSUMER_CRASH_POINTS = (
    "consumer.before_handler",
    "consumer.after_handler",
    "consumer.after_commit",
    "consumer.after_dead_letter",  # fires only in a batch that dead-letters something
)
RELAY_CRASH_POINTS = ("relay.after_ack", "relay.after_mark")
STALL_POINT = "consumer.before_transaction"
# How long an outbox gap keeps its lower id uncommitted waiting for a relay to publish the higher.
GAP_PUBLISH_WAIT_S = 45
WORKER_APPS = {
    "consumers": "oncepipe-consumer:%",
    "relays": "oncepipe-relay%",
    "all workers": "oncepipe-%",
}


@dataclass
class FaultRecord:
    """One injected fault."""

    kind: FaultKind
    at_s: float
    target: str = ""
    detail: str = ""
    seconds: float = 0.0
    error: str = ""


@dataclass
class Injector(RecordFaults, RelayFaults, PoisonFaults, QueueFaults):
    """Injects faults into ``pipeline``; ``rng`` picks targets and options (the record and
    refusal faults are in hostile_faults.py)."""

    pipeline: Pipeline
    codec: Codec = field(default_factory=Codec.load)
    gap_events: int = 0
    poison_records: int = 0
    hostile_records: int = 0

    # -- dispatch ----------------------------------------------------------------------------
    def inject(self, kind: FaultKind, rng: random.Random, option: str = "") -> FaultRecord:
        """Inject one fault of ``kind`` and say what it did."""
        workers = self.pipeline.workers
        record = FaultRecord(kind, round(workers.elapsed(), 1))
        started = time.monotonic()
        try:
            getattr(self, f"_{kind}")(record, rng, option)
        except Exception as exc:  # noqa: BLE001 - a fault that failed is reported, not fatal
            record.error = f"{type(exc).__name__}: {exc}"
        record.seconds = round(time.monotonic() - started, 1)
        return record

    def _live(self, role: Role, rng: random.Random) -> Proc:
        procs = [p for p in self.pipeline.workers.of(role) if p.alive()]
        if not procs:
            raise RuntimeError(f"no live {role}")
        return rng.choice(sorted(procs, key=lambda p: p.name))

    def _restart_after(
        self, proc: Proc, pause: float, *, crash_point: str = "", stall_point: str = ""
    ) -> None:
        time.sleep(pause)
        self.pipeline.workers.start(proc, crash_point=crash_point, stall_point=stall_point)
        proc.held = False

    # -- worker faults -------------------------------------------------------------------------
    def _consumer_sigkill(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        proc = self._live("consumer", rng)
        proc.held = True
        self.pipeline.workers.kill(proc)
        record.target = proc.name
        self._restart_after(proc, rng.uniform(0.2, 3.0))

    def _consumer_crash_point(self, record: FaultRecord, rng: random.Random, option: str) -> None:
        point = option or rng.choice(CONSUMER_CRASH_POINTS)
        proc = self._live("consumer", rng)
        proc.held = True
        # A clean stop, then a successor that SIGKILLs itself at the point; the supervisor
        # restarts it once it fired.
        self.pipeline.workers.terminate(proc)
        record.target, record.detail = proc.name, point
        self._restart_after(proc, 0.2, crash_point=point)

    def _relay_sigkill(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        proc = self._live("relay", rng)
        proc.held = True
        self.pipeline.workers.kill(proc)
        record.target = proc.name
        self._restart_after(proc, rng.uniform(0.2, 3.0))

    def _relay_crash_point(self, record: FaultRecord, rng: random.Random, option: str) -> None:
        point = option or rng.choice(RELAY_CRASH_POINTS)
        relays = sorted(self.pipeline.workers.of("relay"), key=lambda p: p.name)
        armed = rng.choice(relays)
        for proc in relays:
            proc.held = True
            self.pipeline.workers.kill(proc)
        # The armed relay starts first and takes every shard, so it publishes (and dies at the
        # point) as soon as rows are pending; the others take its shards when its lease ends.
        self.pipeline.workers.start(armed, crash_point=point)
        armed.held = False
        time.sleep(2.0)
        for proc in relays:
            if proc is not armed:
                self._restart_after(proc, 0.0)
        record.target, record.detail = armed.name, point

    def _rolling_restart(self, record: FaultRecord, _rng: random.Random, _option: str) -> None:
        codes = []
        roles: tuple[Role, ...] = ("consumer", "second_consumer", "relay")
        for role in roles:
            for proc in sorted(self.pipeline.workers.of(role), key=lambda p: p.name):
                if not proc.alive():
                    continue
                proc.held = True
                codes.append(f"{proc.name}={self.pipeline.workers.terminate(proc)}")
                self._restart_after(proc, 0.5)
                time.sleep(1.0)
        record.target, record.detail = "consumers and relays", "SIGTERM exits " + " ".join(codes)

    def _zombie(self, record: FaultRecord, rng: random.Random, option: str) -> None:
        proc = self._live("consumer", rng)
        proc.held = True
        record.target = proc.name
        stall = (option or rng.choice(["sigstop", "stall_point"])) == "stall_point"
        if stall:
            # Stopped between reading a batch and opening its transaction: on SIGCONT it
            # tries to commit that batch although its partitions moved on.
            self.pipeline.workers.terminate(proc)
            self.pipeline.workers.start(proc, stall_point=STALL_POINT)
            deadline = time.monotonic() + 30
            while not proc.stopped() and proc.alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            record.detail = f"stalled at {STALL_POINT}" if proc.stopped() else "never stalled"
        else:
            proc.signal(signal.SIGSTOP)
            record.detail = "SIGSTOP at a random moment"
        stalled_for = self.pipeline.config.session_timeout_ms / 1000 + rng.uniform(2.0, 5.0)
        time.sleep(stalled_for)
        proc.signal(signal.SIGCONT)
        record.detail += f", resumed after {stalled_for:.1f}s"
        proc.held = False

    def _member_added(self, record: FaultRecord, rng: random.Random, option: str) -> None:
        consumers = self.pipeline.workers.of("consumer")
        if len(consumers) >= self.pipeline.config.max_consumers:
            record.kind = "member_removed"
            self._member_removed(record, rng, option)
            return
        record.target = self.pipeline.add_consumer().name

    def _member_removed(self, record: FaultRecord, rng: random.Random, option: str) -> None:
        consumers = self.pipeline.workers.of("consumer")
        if len(consumers) <= self.pipeline.config.consumers:
            record.kind = "member_added"
            self._member_added(record, rng, option)
            return
        proc = self._live("consumer", rng)
        proc.held = proc.retired = True
        code = self.pipeline.workers.terminate(proc)
        record.target, record.detail = proc.name, f"SIGTERM exit {code}"

    # -- service faults ------------------------------------------------------------------------
    def _broker_sigkill(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        kafka = self.pipeline.services.kafka
        node = rng.randint(1, len(kafka.nodes))
        kafka.kill(node_id=node)
        down = rng.uniform(1.0, 6.0)
        time.sleep(down)
        kafka.start(node_id=node, timeout=180)
        record.target, record.detail = f"kafka node {node}", f"down {down:.1f}s"

    def _broker_restart(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        kafka = self.pipeline.services.kafka
        node = rng.randint(1, len(kafka.nodes))
        kafka.stop(node_id=node)
        kafka.start(node_id=node, timeout=180)
        record.target, record.detail = f"kafka node {node}", "clean stop and start"

    def _leader_chase(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """SIGKILL the leader of one partition, restart it once the cluster elected another,
        then chase the new leader the same way (as Kafka's replication system tests do)."""
        kafka = self.pipeline.services.kafka
        topic = rng.choice(sorted(self.pipeline.topics.values()))
        partition = rng.randrange(self.pipeline.config.partitions)
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
        killed = []
        for _ in range(rng.randint(2, 3)):
            leader = leader_of(admin, topic, partition)
            if leader < 0:
                break
            kafka.kill(node_id=leader)
            killed.append(str(leader))
            time.sleep(rng.uniform(1.0, 4.0))
            kafka.start(node_id=leader, timeout=180)
            # Chase only once the restarted node is back in sync: killing a second replica
            # while the first still catches up would leave fewer than min.insync.replicas.
            if not await_in_sync(admin, topic, len(kafka.nodes), timeout=90):
                record.detail = "replicas not back in sync within 90s; "
                break
        record.target = f"{topic}[{partition}]"
        record.detail += f"leaders killed in turn: nodes {' -> '.join(killed)}"

    def _postgres_immediate(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        postgres = self.pipeline.services.postgres
        postgres.stop(mode="immediate")
        down = rng.uniform(0.5, 4.0)
        time.sleep(down)
        postgres.start(timeout=120)
        self.pipeline.wait_database()
        record.target, record.detail = "postgresql", f"stop -m immediate, down {down:.1f}s"

    def _backend_terminated(self, record: FaultRecord, rng: random.Random, option: str) -> None:
        who = option or rng.choice(sorted(WORKER_APPS))
        with self.pipeline.connect() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name LIKE %s"
                " AND application_name <> 'oncepipe-chaos' AND pid <> pg_backend_pid()",
                (WORKER_APPS[who],),
            ).fetchall()
        record.target, record.detail = who, f"{sum(1 for (ok,) in rows if ok)} sessions"

    # -- network faults (--network) -------------------------------------------------------------
    def _network(self) -> Network:
        if self.pipeline.network is None:
            raise RuntimeError("network faults need a run with --network")
        return self.pipeline.network

    def _cut(self, proxies: list[TcpProxy], record: FaultRecord, rng: random.Random) -> None:
        for proxy in proxies:
            proxy.cut()
        down = rng.uniform(1.0, 8.0)
        time.sleep(down)
        for proxy in proxies:
            proxy.restore()
        record.detail = f"connections dropped and refused for {down:.1f}s"

    def _slow(self, proxies: list[TcpProxy], record: FaultRecord, rng: random.Random) -> None:
        delay, lasting = rng.uniform(0.02, 0.3), rng.uniform(5.0, 15.0)
        for proxy in proxies:
            proxy.delay = delay
        time.sleep(lasting)
        for proxy in proxies:
            proxy.delay = 0.0
        record.detail = f"+{delay * 1000:.0f} ms per chunk for {lasting:.1f}s"

    def _pg_path_cut(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        record.target = "consumers -> postgresql"
        self._cut([self._network().postgres], record, rng)

    def _pg_path_slow(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        record.target = "consumers -> postgresql"
        self._slow([self._network().postgres], record, rng)

    def _commit_reply_lost(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """The next COMMITs commit, and their replies never reach the consumer."""
        proxy = self._network().postgres
        wanted = rng.randint(1, 3)
        before = proxy.lost_commit_replies
        proxy.lose_commit_replies(wanted)
        deadline = time.monotonic() + 30
        while proxy.lost_commit_replies - before < wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        lost = proxy.lost_commit_replies - before
        proxy.keep_commit_replies()  # too few COMMITs meanwhile (an idle pipeline)
        record.target = "consumers -> postgresql"
        record.detail = f"{lost} of {wanted} COMMIT replies lost after the commit"

    def _broker_path_cut(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        proxies, record.target = self._broker_proxies(rng)
        self._cut(proxies, record, rng)

    def _broker_path_slow(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        proxies, record.target = self._broker_proxies(rng)
        self._slow(proxies, record, rng)

    def _broker_proxies(self, rng: random.Random) -> tuple[list[TcpProxy], str]:
        """All brokers' paths, or (with several nodes) sometimes one node's."""
        proxies = self._network().brokers
        if len(proxies) > 1 and rng.random() < 0.5:
            node = rng.randrange(len(proxies))
            return [proxies[node]], f"workers -> kafka node {node + 1}"
        return proxies, "workers -> kafka"

    # -- data faults ---------------------------------------------------------------------------
    def _gap_event(self, rng: random.Random) -> ClickEvent:
        self.gap_events += 1
        return ClickEvent(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            user_id=f"gap-user-{self.gap_events}",
            item_id=f"item-{rng.randrange(self.pipeline.config.items)}",
            action=rng.choice(list(ClickAction)),
            occurred_at=datetime.now(UTC),
            session_id="gap-session",
            surface="chaos",
        )

    def _enqueue(self, conn: psycopg.Connection[TupleRow], event: ClickEvent) -> int:
        encoded = self.codec.encode(event)
        row_id = enqueue_record(
            conn, self.pipeline.topics["outbox"], str(event.event_id),
            key=encoded.key, value=encoded.value, headers=event_headers(encoded),
        )  # fmt: skip
        assert row_id is not None
        return row_id

    def _outbox_gap(self, record: FaultRecord, rng: random.Random, _option: str) -> None:
        """A transaction holding a lower outbox id commits after one holding a higher id."""
        early, late = self._gap_event(rng), self._gap_event(rng)
        with self.pipeline.connect("oncepipe-chaos") as low, self.pipeline.connect() as high:
            low_id = self._enqueue(low, early)  # id n, transaction left open
            high_id = self._enqueue(high, late)  # id n+1
            high.commit()
            self._write_gap(late)
            # Let the relay publish the higher id first, as a high-water-mark relay would. The
            # wait is long: relays starting on a loaded machine (or restarted by a fault) may
            # take many seconds, and a gap closed before they look exposes nothing.
            deadline = time.monotonic() + GAP_PUBLISH_WAIT_S
            while not (exposed := self._published(high_id)) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(rng.uniform(0.2, 1.5))
            low.commit()
            self._write_gap(early)
        record.target = f"outbox ids {low_id} < {high_id}"
        record.detail = f"{high_id} committed first, {low_id} after" + (
            "" if exposed else f" (not exposed: {high_id} unpublished after {GAP_PUBLISH_WAIT_S}s)"
        )

    def _published(self, row_id: int) -> bool:
        with self.pipeline.connect() as conn:
            row = conn.execute(
                "SELECT published_at IS NOT NULL FROM oncepipe.outbox WHERE id = %s", (row_id,)
            ).fetchone()
        return bool(row and row[0])

    def _write_gap(self, event: ClickEvent) -> None:
        line = {
            "seq": self.gap_events,
            "kind": "event",
            "event_id": str(event.event_id),
            "key": event.user_id,
            "item_id": event.item_id,
            "action": event.action.value,
            "poison_kind": None,
        }
        with self.pipeline.gap_manifest.open("a") as manifest:
            manifest.write(json.dumps(line) + "\n")


def as_dict(record: FaultRecord) -> dict[str, object]:
    """A fault record as JSON-ready data."""
    return asdict(record)
