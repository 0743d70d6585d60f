"""``oncepipe consume``: run one worker of a consumer group until SIGTERM or SIGINT."""

from __future__ import annotations

import typer

from cli.observe import METRICS_PORT, observe_consumer
from cli.preflight import (
    check_broker_login,
    check_consumer_acls,
    check_database,
    check_topic_names,
)
from cli.shared import state
from consumers import (
    ConsumerRuntime,
    ConsumerSettings,
    QueueCounts,
    QueueRuntime,
    consume_mode,
    load_consumer_settings,
    load_queue_settings,
    outbox_sink,
    resolve,
)
from oncepipe import tracing
from oncepipe.errors import ConfigError
from oncepipe.hooks import hooks_from_environment
from oncepipe.metrics import WorkerMetrics, load_metrics_settings
from oncepipe.settings import Settings
from oncepipe.signals import install_stop_handlers
from schemas import CatalogError, Codec, SchemaStore, register_schema_path

__all__ = ["consume"]


def _require(settings: ConsumerSettings) -> None:
    missing = [
        flag
        for flag, value in (
            ("--group", settings.group),
            ("--topic", settings.topics),
            ("--handler", settings.handler),
        )
        if not value
    ]
    if missing:
        env = {"--group": "GROUP", "--topic": "TOPICS", "--handler": "HANDLER"}
        names = ", ".join(f"{flag} (ONCEPIPE_CONSUMER_{env[flag]})" for flag in missing)
        raise ConfigError(f"oncepipe consume needs {names}")


def _codec(
    settings: Settings, consumer_settings: ConsumerSettings, metrics: WorkerMetrics | None
) -> Codec:
    """The codec of every known type; a refused type is a configuration to fix (exit 2)."""
    lookup = SchemaStore(settings.database_url.get_secret_value()).lookup
    try:
        register_schema_path(settings.schema_path)
        return Codec.load(
            lookup=lookup if metrics is None else metrics.counting_lookup(lookup),
            max_payload_bytes=consumer_settings.max_payload_bytes,
        )
    except CatalogError as exc:
        raise ConfigError(str(exc)) from exc


def consume(
    ctx: typer.Context,
    group: str | None = typer.Option(
        None, "--group", help="consumer group [env ONCEPIPE_CONSUMER_GROUP]"
    ),
    topic: list[str] | None = typer.Option(
        None, "--topic", help="topic to consume, repeatable [env ONCEPIPE_CONSUMER_TOPICS, a,b]"
    ),
    handler: str | None = typer.Option(
        None,
        "--handler",
        help="handler name, or module:attribute naming an EventHandlers or a function "
        "[env ONCEPIPE_CONSUMER_HANDLER]",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="records per transaction [env ONCEPIPE_CONSUMER_BATCH_SIZE]"
    ),
    batch_timeout: float | None = typer.Option(
        None,
        "--batch-timeout",
        help="seconds to wait for a batch's first record [env ONCEPIPE_CONSUMER_BATCH_TIMEOUT_S]",
    ),
    batch_linger: float | None = typer.Option(
        None,
        "--batch-linger",
        help="then seconds to wait for more (0: take what arrived) "
        "[env ONCEPIPE_CONSUMER_BATCH_LINGER_S]",
    ),
    session_timeout_ms: int | None = typer.Option(
        None,
        "--session-timeout-ms",
        help="evict a silent member after this long [env ONCEPIPE_CONSUMER_SESSION_TIMEOUT_MS]",
    ),
    group_protocol: str | None = typer.Option(
        None,
        "--group-protocol",
        help="classic|consumer (KIP-848, the broker owns the session timeout) "
        "[env ONCEPIPE_CONSUMER_GROUP_PROTOCOL]",
    ),
    instance_id: str | None = typer.Option(
        None,
        "--instance-id",
        help="static membership id, stable per worker slot, unique among live workers "
        "[env ONCEPIPE_CONSUMER_INSTANCE_ID]",
    ),
    auto_offset_reset: str | None = typer.Option(
        None,
        "--auto-offset-reset",
        help="earliest|latest, for partitions without a stored offset "
        "[env ONCEPIPE_CONSUMER_AUTO_OFFSET_RESET]",
    ),
    on_poison: str | None = typer.Option(
        None,
        "--on-poison",
        help="after a dead letter: skip (default; later events of its key flow on) or park-key "
        "(they wait in order until `oncepipe dlq replay` or `dlq discard` of it) "
        "[env ONCEPIPE_CONSUMER_ON_POISON]",
    ),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="partition (a consumer group, default) or queue (a Kafka share group: more "
        "workers than partitions, no per-key order; preview) [env ONCEPIPE_CONSUMER_MODE]",
    ),
    metrics_port: int | None = METRICS_PORT,
) -> None:
    """Apply events to PostgreSQL exactly once per group; SIGTERM finishes the batch, exits 0."""
    settings = state(ctx).settings
    queue = consume_mode(mode) == "queue"
    queue_settings = load_queue_settings() if queue else None
    consumer_settings = load_consumer_settings(
        group=group,
        topics=tuple(topic) if topic else None,
        handler=handler,
        batch_size=batch_size,
        batch_timeout_s=batch_timeout,
        batch_linger_s=batch_linger,
        session_timeout_ms=session_timeout_ms,
        group_protocol=group_protocol,
        instance_id=instance_id,
        auto_offset_reset=auto_offset_reset,
        on_poison=on_poison,
    )
    _require(consumer_settings)
    check_topic_names(consumer_settings.topics)
    # Importing the handler's module registers its event types: the codec comes after it.
    handler_fn = resolve(consumer_settings.handler)
    metrics_settings = load_metrics_settings(port=metrics_port)
    observed = observe_consumer(
        settings, metrics_settings, hooks_from_environment(), consumer_settings.group
    )
    try:
        codec = _codec(settings, consumer_settings, observed.metrics)
        check_database(settings, f"oncepipe-consumer:{consumer_settings.group}")
        check_broker_login(settings)
        check_consumer_acls(settings, consumer_settings.group, consumer_settings.topics)
        # After the checks: a refused start stays one line.
        tracing.setup_worker("oncepipe-consumer")
        runtime: ConsumerRuntime | QueueRuntime
        if queue_settings is not None:
            registry = observed.metrics.registry if observed.metrics is not None else None
            runtime = QueueRuntime(
                settings, consumer_settings, queue_settings, decoder=codec, handler=handler_fn,
                sink=outbox_sink(codec), hooks=observed.hooks,
                counts=QueueCounts(consumer_settings.group, registry),
            )  # fmt: skip
        else:
            runtime = ConsumerRuntime(
                settings,
                consumer_settings,
                decoder=codec,
                handler=handler_fn,
                sink=outbox_sink(codec),
                hooks=observed.hooks,
            )
        install_stop_handlers(runtime.stop)
        runtime.run()
    finally:
        observed.close()
