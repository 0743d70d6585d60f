"""oncepipe's plumbing: what producers, consumers and the command line stand on.

The bare package is light on purpose (the standard library only): it offers the version, so
that the console script can install its SIGTERM guard (``oncepipe.signals``) before anything
heavy loads. The plumbing itself is in public modules, imported by name:

- ``oncepipe.errors``: the one exception tree, ``OncepipeError`` (its root, defined with the
  contract in ``schemas.errors``) and the classes that say what a caller should do;
- ``oncepipe.settings``: ``Settings``, ``load_settings`` (``ONCEPIPE_*`` variables),
  ``read_settings`` (any settings model; a bad value becomes one ``ConfigError``);
- ``oncepipe.db``: ``connect``, ``create_pool`` (psycopg 3), ``wrap_as_unavailable`` (a lost
  session becomes ``DatabaseUnavailableError``);
- ``oncepipe.kafka``: the only module that imports confluent-kafka: ``connection_config``
  (where every client's librdkafka keys start), the typed ``KafkaConsumer``,
  ``KafkaProducer`` and ``Record``, the guarded factories, ``RawHeaders``,
  ``message_headers``, ``broker_error``;
- ``oncepipe.logging``: ``configure_logging``, ``get_logger`` (structlog, secrets masked);
- ``oncepipe.conninfo``: connection strings checked, masked and explained;
- ``oncepipe.migrations``: ``apply_migrations``, ``pending_migrations`` (``oncepipe/sql/``);
- ``oncepipe.hooks``: ``Hooks`` (crash/stall/hang points, batch/dead-letter/publish
  callbacks, the loop's heartbeat), ``NO_HOOKS``, ``FanOut``, ``hooks_from_environment``;
- ``oncepipe.metrics``: ``WorkerMetrics`` (Prometheus, fed by the hooks), ``MetricsSettings``
  (``ONCEPIPE_METRICS_*``), ``ScrapeCollector``;
- ``oncepipe.health``: ``serve`` (``/metrics``, ``/livez``, ``/readyz`` on their own threads);
- ``oncepipe.signals``: how a worker process stops (SIGTERM/SIGINT), standard library only.

It never imports the workers (``producers``, ``consumers``) or the command line (``cli``).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
