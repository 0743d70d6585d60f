"""One chaos run from start to verdict.

1. A fresh database and topics; the offset history trigger; the monitor starts sampling.
2. Two relays, the consumers, both simulators (paced to end at ``load_share`` of the run).
3. Faults at their planned moments until ``duration_s``; the supervisor restarts casualties.
4. Drain (bounded): simulators done, outbox empty, every stored offset (of every group that
   ran) at its partition's end.
5. Stop every worker with SIGTERM, stop the monitor, load the evidence, run the checks (per
   group when the second_group fault started a second one).

Public names: ``run_chaos``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import psycopg

from tests.faults.chaos.checks import Observations, run_group_checks
from tests.faults.chaos.config import ChaosConfig
from tests.faults.chaos.evidence import Evidence, load_group, load_shared
from tests.faults.chaos.faults import FaultRecord, Injector
from tests.faults.chaos.monitor import Monitor
from tests.faults.chaos.network import Network
from tests.faults.chaos.pipeline import Pipeline, Services
from tests.faults.chaos.poison_checks import release_parked
from tests.faults.chaos.queue_checks import run_queue_checks
from tests.faults.chaos.queue_mode import queue_drained, queue_note
from tests.faults.chaos.report import ChaosResult
from tests.faults.chaos.scheduler import plan_faults
from tests.faults.chaos.topic import end_offsets
from tests.faults.chaos.verdict import drain_consequences
from tests.faults.chaos.workers import WorkerSet

__all__ = ["run_chaos"]

Log = Callable[[str], None]


def _drained(pipeline: Pipeline) -> tuple[bool, str]:
    if not pipeline.simulators_done():
        return False, "simulators still submitting"
    try:
        with pipeline.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM oncepipe.outbox WHERE published_at IS NULL"
            ).fetchone()
            stored = {
                (g, t, p): o
                for g, t, p, o in conn.execute(
                    "SELECT consumer_group, topic, partition, next_offset"
                    " FROM oncepipe.consumer_offsets WHERE consumer_group = ANY(%s)",
                    (pipeline.groups(),),
                )
            }
    except psycopg.Error as exc:
        return False, f"database: {exc}"
    pending = int(row[0]) if row else 0
    if pending:
        return False, f"{pending} outbox rows unpublished"
    behind = 0
    for topic in pipeline.topics.values():
        for partition, end in end_offsets(pipeline.settings.kafka_bootstrap_servers, topic).items():
            for group in pipeline.groups():
                behind += max(0, end - stored.get((group, topic, partition), 0))
    return behind == 0, f"{behind} records not consumed"


def _drain(pipeline: Pipeline, timeout: float, log: Log) -> tuple[bool, str, float]:
    started = time.monotonic()
    for proc in pipeline.workers.procs.values():
        if not proc.retired:
            proc.signal(signal.SIGCONT)  # no zombie is left stopped
    detail = ""
    while time.monotonic() - started < timeout:
        done, detail = (queue_drained if pipeline.config.mode == "queue" else _drained)(pipeline)
        if done:
            return True, "drained", time.monotonic() - started
        time.sleep(1.0)
    log(f"chaos: not drained after {timeout:.0f}s: {detail}")
    return False, detail, time.monotonic() - started


def _events(ev: Evidence, injector: Injector, network: Network | None) -> dict[str, int]:
    lines = [line for lines in ev.manifests.values() for line in lines]
    records = sum(len(r) for r in ev.records.values())
    return {
        "distinct_submitted": len({x["event_id"] for x in lines if x["kind"] == "event"}),
        # A restarted simulator appends its replayed submissions again: count each once.
        "duplicates_submitted": len(
            {(x["seq"], x["event_id"]) for x in lines if x["kind"] == "duplicate"}
        ),
        "poison_submitted": len({x["event_id"] for x in lines if x["kind"] == "poison"}),
        "gap_events": injector.gap_events,
        "raw_poison_records": injector.poison_records,
        "hostile_records": injector.hostile_records,
        "lost_commit_replies": network.postgres.lost_commit_replies if network else 0,
        "topic_records": records,
        "applied": len(ev.clicks),
        "witnessed_applies": len(ev.witness),
        "absorbed_duplicates": records - len(ev.inbox) - len(ev.dead_letters),
        "dead_letters": sum(ev.dead_letters.values()),
        "dead_letter_relay_copies": sum(ev.dead_letter_copies.values()),
    }


def _observed(
    group: str, monitor: Monitor, workers: WorkerSet, drained: bool, detail: str
) -> Observations:
    """What the monitor and the supervisor saw, as far as ``group`` is concerned."""
    return Observations(
        samples=monitor.samples,
        orphans=[event_id for g, event_id in monitor.orphans if g == group],
        sampled_regressions=[(t, p, a, b) for g, t, p, a, b in monitor.regressions if g == group],
        clean_stops=workers.clean_stops,
        drained=drained,
        drain_detail=detail,
        exits=[
            (e.name, e.role, e.code, (e.tail.splitlines() or [""])[-1])
            for e in workers.exits
            if not e.crashed_at_point
        ],
    )


def run_chaos(
    config: ChaosConfig, services: Services, workdir: Path, log: Log = print
) -> ChaosResult:
    """Run the pipeline under faults, drain it, check every invariant."""
    pipeline = Pipeline(config, services, workdir)
    pipeline.prepare()
    plan = plan_faults(config)
    log(
        f"chaos: seed {config.seed}, {config.duration_s:.0f}s, {config.events} events, "
        f"{len(plan)} faults planned, database {pipeline.database}, group {pipeline.group}"
    )
    monitor = Monitor(
        pipeline.url, [pipeline.group, pipeline.second_group], config.sample_interval_s
    )
    workers = pipeline.workers
    workers.started = time.monotonic()
    injector = Injector(pipeline)
    faults: list[FaultRecord] = []
    drained, drain_detail, drain_s = False, "not reached", 0.0
    released_at: datetime | None = None
    monitor.start()
    try:
        for _ in range(config.relays):
            pipeline.add_relay()
        for _ in range(config.consumers):
            pipeline.add_consumer()
        pipeline.add_simulators()
        workers.supervise()
        for planned in plan:
            time.sleep(max(0.0, planned.at_s - workers.elapsed()))
            # A script is a list of faults to inject, late or not (a loaded machine runs slow
            # faults slower); a random schedule ends with the run.
            if config.script is None and workers.elapsed() >= config.duration_s:
                break
            record = injector.inject(planned.kind, planned.rng(), planned.option)
            faults.append(record)
            log(
                f"chaos: {record.at_s:7.1f}s {record.kind:<20} {record.target} {record.detail}"
                + (f" FAILED: {record.error}" if record.error else "")
            )
        time.sleep(max(0.0, config.duration_s - workers.elapsed()))
        drained, drain_detail, drain_s = _drain(pipeline, config.drain_timeout_s, log)
        if config.poison_policies:  # parked keys stay parked until someone decides
            released, release_detail, released_at = release_parked(pipeline, log)
            drained, drain_detail = drained and released, f"{drain_detail}; {release_detail}"
    finally:
        workers.stop_supervising()
        workers.stop_all()
        pipeline.close()
        monitor.stop()
    duration = workers.elapsed() - drain_s
    shared = load_shared(
        bootstrap=services.kafka.bootstrap_servers,
        topics=pipeline.topics,
        dlq_topics=pipeline.dlq_topics(),
        manifests={
            "outbox": [pipeline.manifests["outbox"], pipeline.gap_manifest],
            "direct": [
                pipeline.manifests["direct"],
                pipeline.hostile_manifest,
                pipeline.marked_manifest,
            ],
        },
        poison_manifest=pipeline.poison_manifest,
        marks_manifest=pipeline.marks_manifest,
    )
    shared.released_at = released_at
    groups = [
        (
            load_group(shared, pipeline.url, group),
            _observed(group, monitor, workers, drained, drain_detail),
        )
        for group in pipeline.groups()
    ]
    evidence = groups[0][0]
    notes = [
        f"monitor: {monitor.samples} samples, {monitor.skipped} skipped while PostgreSQL was down",
        f"database {pipeline.database}, group {pipeline.group}, topics "
        + ", ".join(pipeline.topics.values()),
    ]
    if pipeline.network is not None:
        postgres_proxy = pipeline.network.postgres
        notes.append(
            f"network: consumers reached PostgreSQL through a proxy ({postgres_proxy.connections}"
            f" connections), consumers and relays reached Kafka through"
            f" {len(pipeline.network.brokers)} proxies"
        )
    if len(groups) > 1:
        notes.append(f"second consumer group {pipeline.second_group}: checks named (group ...)")
    if config.poison_rate == 0 and not config.raw_poison:
        notes.append("poison off: simulator poison-rate 0 and no raw poison records")
    checks = run_queue_checks(groups) if config.mode == "queue" else run_group_checks(groups)
    if config.mode == "queue":
        notes.append(queue_note())
    undrained = drain_consequences(checks, drained, drain_detail)
    if undrained:
        notes.insert(0, undrained)
    return ChaosResult(
        seed=config.seed,
        duration_s=round(duration, 1),
        drain_s=round(drain_s, 1),
        config={k: v for k, v in asdict(config).items() if k != "script"},
        events=_events(evidence, injector, pipeline.network),
        faults=faults,
        checks=checks,
        exits=workers.exits,
        workdir=str(workdir),
        notes=notes,
    )
