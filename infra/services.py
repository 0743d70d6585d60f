"""The set of native services, and helpers that act on all of them.

Public names: ``all_services``, ``service_env``, ``Service``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from infra.kafka.broker import Kafka
from infra.paths import InfraLayout, layout
from infra.postgres.server import Postgres

__all__ = ["Service", "all_services", "service_env"]


class Service(Protocol):
    """What every native service controller offers."""

    name: str

    @property
    def log_path(self) -> Path:
        """The service's main log file."""

    def install(self) -> object: ...
    def start(self, timeout: float = ...) -> bool: ...
    def stop(self, timeout: float = ...) -> bool: ...
    def kill(self) -> bool: ...
    def restart(self, timeout: float = ...) -> None: ...
    def running(self) -> bool: ...
    def pid(self) -> int | None: ...
    def wait_ready(self, timeout: float = ...) -> None: ...
    def env(self) -> dict[str, str]: ...
    def remove_state(self) -> None: ...


def all_services(where: InfraLayout | None = None) -> dict[str, Service]:
    """Every service by name, in start order."""
    where = where or layout()
    return {"postgres": Postgres(where), "kafka": Kafka(where)}


def service_env(where: InfraLayout | None = None) -> dict[str, str]:
    """The ONCEPIPE_* variables that point clients at the native services."""
    env: dict[str, str] = {}
    for service in all_services(where).values():
        env.update(service.env())
    return env
