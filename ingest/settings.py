"""The ingest server's settings (``ONCEPIPE_INGEST_*``), read once at the entry point.

Public names: ``IngestSettings``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["IngestSettings"]


class IngestSettings(BaseSettings):
    """How ``oncepipe ingest`` listens, whom it admits and what it bounds."""

    model_config = SettingsConfigDict(env_prefix="ONCEPIPE_INGEST_", frozen=True, extra="ignore")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on (0: any free one)")
    clients_file: Path | None = Field(
        None, description="JSON file of the clients: name, hashed API key, granted types, rate"
    )
    key_ttl_s: float = Field(
        86_400.0, gt=0, description="an Idempotency-Key is remembered this long (keep <= inbox)"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger bodies get 413")
    max_batch: int = Field(500, ge=1, le=10_000, description="most events in one batch request")
    rate_per_s: float = Field(200.0, gt=0, description="default requests/s per client")
    burst: int = Field(400, ge=1, description="default burst of requests per client")
    body_timeout_s: float = Field(10.0, gt=0, description="read the body within this (else 408)")
    request_timeout_s: float = Field(
        10.0, gt=0, description="the database work of one request within this (else 503)"
    )
    pool_size: int = Field(8, ge=1, le=200, description="PostgreSQL connections")
    cleanup_interval_s: float = Field(60.0, gt=0, description="delete expired keys this often")
    topics: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"EventType": "topic"}: another topic than topic_for(type)',
    )
    naive_endpoint: bool = Field(
        False,
        description="also serve /naive/v1/events/{type}: no key, a fresh id per request, no"
        " idempotency record (retries become new events); for demos and benchmarks only",
    )
