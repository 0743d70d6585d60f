"""Whether one event type's versions can live together: what the codec and ``schema check`` ask.

Every older version must be readable as every newer one (Avro schema resolution, logical types
kept: ``schemas.compat``), and no version may have a shape a body could abuse to stall or
crash a consumer (``schemas.shape``). The codec refuses to load such a history; ``oncepipe
schema check`` reports it with exit 1, without any service, so a user's CI can run it.

Public names: ``history_problems``, ``versions_by_type``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from schemas.catalog import SchemaVersion
from schemas.compat import check_history
from schemas.shape import unbounded_shapes

__all__ = ["history_problems", "versions_by_type"]


def history_problems(history: Sequence[SchemaVersion]) -> list[str]:
    """Why these versions of one type (oldest first) cannot be read by the newest; [] if fine."""
    problems = check_history([version.schema.text for version in history])
    problems += [
        f"{version.path.name} has {hazard}"
        for version in history
        for hazard in unbounded_shapes(version.schema.writing)
    ]
    return problems


def versions_by_type(versions: Iterable[SchemaVersion]) -> dict[str, list[SchemaVersion]]:
    """Versions grouped by event type, each group oldest first."""
    grouped: dict[str, list[SchemaVersion]] = {}
    for version in sorted(versions, key=lambda v: (v.event_type, v.version)):
        grouped.setdefault(version.event_type, []).append(version)
    return grouped
