"""The schema store: writer schemas registered in PostgreSQL, owner of ``oncepipe.schema_registry``.

Producers register every schema they ship when they start, so a consumer that does not ship a
newer producer's version yet can still read its events: the codec asks ``lookup`` for a
fingerprint it does not know, once, and caches the parsed schema. Rows are immutable (the
fingerprint names its schema), so registering is idempotent and nothing is ever updated.

Connections are short and opened on demand: registration happens once per process and lookups
once per unknown fingerprint. Connection errors are psycopg's own (``OperationalError``):
transient, for the caller to retry, never a reason to dead-letter a message.

Public names: ``SchemaStore``.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from schemas.avro_io import fingerprint as fingerprint_of
from schemas.codec import Codec

__all__ = ["SchemaStore"]

_INSERT = """
INSERT INTO oncepipe.schema_registry (fingerprint, event_type, schema_json)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
ON CONFLICT (fingerprint) DO NOTHING
"""
_SELECT = "SELECT schema_json FROM oncepipe.schema_registry WHERE fingerprint = %s"
_STORED = "SELECT fingerprint FROM oncepipe.schema_registry WHERE fingerprint = ANY(%s::text[])"


class SchemaStore:
    """Registers and looks up writer schemas by fingerprint in PostgreSQL."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo

    def register(self, codec: Codec) -> int:
        """Register every schema the codec ships; returns how many rows were new."""
        rows = sorted(codec.writer_schemas().items())
        return self._insert(
            [fp for fp, _ in rows], [t for _, (t, _) in rows], [s for _, (_, s) in rows]
        )

    def register_schema(self, fingerprint: str, event_type: str, schema_json: str) -> None:
        """Register one writer schema; refuses a fingerprint that is not the schema's own."""
        actual = fingerprint_of(schema_json)
        if actual != fingerprint:
            raise ValueError(
                f"fingerprint {fingerprint} does not match the schema, whose fingerprint is "
                f"{actual}; register the schema under its own fingerprint"
            )
        self._insert([fingerprint], [event_type], [schema_json])

    def lookup(self, fingerprint: str) -> str | None:
        """The JSON text of the schema with this fingerprint, or None; pass to ``Codec.load``."""
        with self._connect() as conn:
            row = conn.execute(_SELECT, (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    def stored(self, fingerprints: Iterable[str]) -> set[str]:
        """Which of these fingerprints have a row in the store."""
        with self._connect() as conn:
            rows = conn.execute(_STORED, (list(fingerprints),)).fetchall()
        return {str(row[0]) for row in rows}

    def _insert(self, fingerprints: list[str], types: list[str], texts: list[str]) -> int:
        with self._connect() as conn:
            return conn.execute(_INSERT, (fingerprints, types, texts)).rowcount

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=10, application_name="oncepipe-schemas"
        )
