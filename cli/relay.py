"""``oncepipe relay``: publish the transactional outbox to Kafka."""

from __future__ import annotations

import typer

from cli.observe import METRICS_PORT, observe_relay
from cli.options import build_settings
from cli.preflight import check_broker_login, check_database
from cli.shared import state
from oncepipe import tracing
from oncepipe.hooks import hooks_from_environment
from oncepipe.metrics import load_metrics_settings
from oncepipe.signals import install_stop_handlers
from producers import ProducerSettings, Relay, RelaySettings

__all__ = ["relay"]


def relay(
    ctx: typer.Context,
    batch_size: int | None = typer.Option(
        None, help="rows per publish batch [env ONCEPIPE_RELAY_BATCH_SIZE, default 1000]"
    ),
    poll_interval: float | None = typer.Option(
        None, "--poll-interval", help="seconds between polls [env ONCEPIPE_RELAY_POLL_INTERVAL_S]"
    ),
    listen: bool | None = typer.Option(
        None, "--listen/--no-listen", help="wake on NOTIFY [env ONCEPIPE_RELAY_LISTEN, default on]"
    ),
    retention: float | None = typer.Option(
        None, help="seconds to keep published rows [env ONCEPIPE_RELAY_RETENTION_S, default 7d]"
    ),
    pass_timeout: float | None = typer.Option(
        None,
        "--pass-timeout",
        help="seconds to wait for a batch's acks before holding the unanswered partitions"
        " [env ONCEPIPE_RELAY_PASS_TIMEOUT_S, default 10]",
    ),
    lease: float | None = typer.Option(
        None,
        "--lease",
        help="seconds a relay holds its outbox shards without renewing them; a relay dead or "
        "stalled this long loses them to the others [env ONCEPIPE_RELAY_LEASE_S, default 10]",
    ),
    metrics_port: int | None = METRICS_PORT,
) -> None:
    """Publish outbox rows to Kafka until SIGTERM (which finishes the batch in flight).

    Run several to publish in parallel: the outbox's 16 shards (by key hash) are spread over
    the live relays, each shard leased by one of them; `oncepipe status` shows who holds which.
    """
    settings = state(ctx).settings
    relay_settings = build_settings(
        RelaySettings,
        batch_size=batch_size,
        poll_interval_s=poll_interval,
        listen=listen,
        retention_s=retention,
        pass_timeout_s=pass_timeout,
        lease_s=lease,
    )
    metrics_settings = load_metrics_settings(port=metrics_port)
    check_database(settings, "oncepipe-relay")
    check_broker_login(settings)
    tracing.setup_worker("oncepipe-relay")  # after the checks: a refused start stays one line
    observed = observe_relay(settings, metrics_settings, hooks_from_environment())
    try:
        worker = Relay(
            settings, relay_settings, build_settings(ProducerSettings), hooks=observed.hooks
        )
        install_stop_handlers(worker.request_stop)
        worker.run()
    finally:
        observed.close()
