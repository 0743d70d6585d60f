"""Native services for development and tests: a real Kafka broker and a real PostgreSQL.

Public names: ``Kafka``, ``Postgres``, ``ServiceError``, ``all_services``, ``service_env``.
"""

from __future__ import annotations

from infra.kafka.broker import Kafka
from infra.postgres.server import Postgres
from infra.process import ServiceError
from infra.services import all_services, service_env

__all__ = ["Kafka", "Postgres", "ServiceError", "all_services", "service_env"]
