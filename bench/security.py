"""Encrypted transport's cost: produce and consume on the secured broker beside plaintext.

One run, the same bytes, the same machine: the plaintext broker of ``make bench`` and a
throwaway secured broker (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer with the pipeline's
ACLs; see ``infra.kafka.security``) started by this suite on ports base + 300, stopped after.
The secured clients run as the ``admin`` principal, granted the pipeline's ACL set on each
bench topic (so the authorizer checks every request; a super user would skip it).

- produce: ``raw idempotent`` (confluent-kafka, oncepipe's settings, pre-encoded) and
  ``oncepipe send (pipelined)``, each on both brokers; baseline: raw idempotent, plaintext;
- consume, batch 500: ``raw consume + decode`` (no database) and the oncepipe consumer (inbox,
  click handler, offsets), each on both brokers; baseline: raw consume, plaintext.

Public names: ``run_security``.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.consume import _fill, _loop, _oncepipe
from bench.env import PARTITIONS, BenchEnv
from bench.events import EventSet
from bench.measure import Sample
from bench.produce import _variants as produce_variants
from bench.results import SuiteResult, Variant, interleave
from bench.services import ServiceCpu
from infra import Kafka, ServiceError
from infra.paths import layout
from oncepipe.kafka import (
    AdminClient,
    PipelinePrincipals,
    apply_acls,
    create_topics,
    pipeline_acls,
)
from schemas import Codec

__all__ = ["run_security"]

PORT_OFFSET = 300
PRINCIPAL = "admin"
GROUP_PREFIX = "bench-"  # the consume benchmark's groups
PRODUCE_VARIANTS = ("raw idempotent (baseline)", "oncepipe send (pipelined, pre-encoded)")


class SecuredBenchEnv(BenchEnv):
    """A ``BenchEnv`` on the secured broker: each topic it creates gets the pipeline's ACLs."""

    def __init__(self, kafka: Kafka) -> None:
        self._super = AdminClient(kafka.super_admin_config())
        self._kafka_pid = kafka.pid()
        fields = {
            key.removeprefix("ONCEPIPE_").lower(): value
            for key, value in kafka.env(PRINCIPAL).items()
        }
        super().__init__(kafka=fields)

    def service_cpu(self) -> ServiceCpu:
        """The sampler, charging the secured broker."""
        return ServiceCpu(kafka_pid=self._kafka_pid)

    def create_topic(self, suite: str, partitions: int = PARTITIONS) -> str:
        """Grant the pipeline's ACLs on a fresh topic to the bench principal, then create it."""
        name = f"bench.{suite}.{uuid.uuid4().hex[:8]}"
        everyone = PipelinePrincipals(*(PRINCIPAL,) * 5)
        apply_acls(self._super, pipeline_acls([name], GROUP_PREFIX, everyone))
        create_topics(self._admin, {name: partitions})
        return name


@contextmanager
def secured_broker() -> Iterator[Kafka]:
    """A throwaway secured single-node broker beside the plaintext one."""
    base = layout()
    with tempfile.TemporaryDirectory(prefix="oncepipe-bench-secured-") as state:
        kafka = Kafka(
            replace(
                base,
                state_dir=Path(state),
                kafka_port=base.kafka_port + PORT_OFFSET,
                kafka_controller_port=base.kafka_controller_port + PORT_OFFSET,
                kafka_brokers=1,
                kafka_security="scram-tls",
            )
        )
        try:
            for attempt in range(3):
                try:
                    kafka.start(timeout=120)
                    break
                except ServiceError:
                    kafka.kill()  # a client socket may hold an ephemeral port for a moment
                    if attempt == 2:
                        raise
            yield kafka
        finally:
            kafka.kill()


def _labelled(variant: Variant, mode: str) -> Variant:
    return Variant(f"{variant.name}, {mode}", f"{variant.description} ({mode})", variant.run)


def _produce_case(
    result: SuiteResult, envs: dict[str, BenchEnv], data: EventSet, codec: Codec, runs: int
) -> None:
    topics = {mode: env.create_topic("security") for mode, env in envs.items()}
    variants = [
        _labelled(variant, mode)
        for mode, env in envs.items()
        for variant in produce_variants(env, topics[mode], data, codec)
        if variant.name in PRODUCE_VARIANTS
    ]
    result.add_case(
        "produce click",
        variants,
        interleave(runs, variants),
        baseline=f"{PRODUCE_VARIANTS[0]}, plaintext",
        params={"events": len(data.events), "event_bytes": data.median_bytes},
    )
    for mode, env in envs.items():
        env.delete_topic(topics[mode])


def _consume_variants(
    env: BenchEnv, topic: str, mode: str, *, total: int, batch: int, cpu: ServiceCpu, codec: Codec
) -> list[Variant]:
    def raw() -> Sample:
        return _loop(env, topic, total=total, batch=batch, cpu=cpu, write=None, codec=codec)

    def oncepipe() -> Sample:
        return _oncepipe(env, topic, total, batch, cpu)

    return [
        Variant(f"raw consume + decode, {mode}", f"no database ({mode})", raw),
        Variant(
            f"oncepipe consumer (clicks), {mode}",
            f"ConsumerRuntime + click handler, inbox, offsets, batch {batch} ({mode})",
            oncepipe,
        ),
    ]


def _consume_case(
    result: SuiteResult, envs: dict[str, BenchEnv], data: EventSet, codec: Codec, runs: int
) -> None:
    total, batch = len(data.events), 500
    topics: dict[str, str] = {}
    variants: list[Variant] = []
    for mode, env in envs.items():
        topics[mode] = topic = env.create_topic("security")
        _fill(env, topic, data)

        variants += _consume_variants(
            env, topic, mode, total=total, batch=batch, cpu=env.service_cpu(), codec=codec
        )
    result.add_case(
        f"consume click, batch {batch}",
        variants,
        interleave(runs, variants),
        baseline="raw consume + decode, plaintext",
        params={"events": total, "batch": batch},
    )
    for mode, env in envs.items():
        env.delete_topic(topics[mode])


def run_security(env: BenchEnv, *, quick: bool, runs: int) -> SuiteResult:
    """Produce and consume, plaintext beside SASL_SSL, in one run."""
    result = SuiteResult("security", quick=quick)
    result.notes.append(
        "secured: SASL_SSL (SCRAM-SHA-512) to a broker with StandardAuthorizer and the "
        "pipeline's ACLs; plaintext: the same machine's plaintext broker, same bytes, one run"
    )
    codec = Codec.load()
    produce = EventSet.build("click", 20_000 if quick else 100_000, codec)
    consume = EventSet.build("click", 20_000 if quick else 60_000, codec)
    with secured_broker() as kafka:
        envs = {"plaintext": env, "secured": SecuredBenchEnv(kafka)}
        _produce_case(result, envs, produce, codec, runs)
        _consume_case(result, envs, consume, codec, runs)
    return result
