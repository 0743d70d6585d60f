"""Topic names, part of the contract: ``events.<name>`` per event type, ``<topic>.dlq`` beside.

Producers, consumers and the dead-letter tools all name topics the same way, so the rule lives
here with the event types. Kafka's own rule for a legal name is here too (``topic_name_problem``).

Public names: ``topic_for``, ``dlq_topic_for``, ``topic_name_problem``.
"""

from __future__ import annotations

import re

__all__ = ["dlq_topic_for", "topic_for", "topic_name_problem"]

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def topic_for(event_type: str) -> str:
    """The topic of an event type: ``ClickEvent`` -> ``events.click``."""
    base = event_type.removesuffix("Event") or event_type
    return "events." + _CAMEL_BOUNDARY.sub("_", base).lower()


def dlq_topic_for(topic: str) -> str:
    """The dead-letter topic of a topic."""
    return f"{topic}.dlq"


# Kafka's own rule (org.apache.kafka.common.internals.Topic): these characters, 1..249 of them.
_TOPIC_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
_TOPIC_MAX = 249
_TOPIC_RULE = "Kafka topic names use letters, digits, '.', '_' and '-', at most 249"


def topic_name_problem(name: str) -> str | None:
    """Why Kafka would refuse ``name`` as a topic name, or None when it is legal."""
    if name in {"", ".", ".."}:
        return f"{_TOPIC_RULE}, and not '', '.' or '..'"
    if len(name) > _TOPIC_MAX:
        return f"it has {len(name)} characters; {_TOPIC_RULE}"
    if not _TOPIC_CHARS.fullmatch(name):
        bad = "".join(sorted({c for c in name if not _TOPIC_CHARS.fullmatch(c)}))
        return f"it holds {bad!r}; {_TOPIC_RULE}"
    return None
