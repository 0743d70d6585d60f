"""Structured logging: JSON lines in production, readable console output on a terminal.

Every line, structlog's and the standard library's (librdkafka's own lines come through the
``oncepipe.librdkafka`` logger), is rendered the same way and has the settings' secrets masked.

Lines logged while a record is current (``current_record``: the consumer sets it while a
handler iterates over its events) carry that record's coordinates, whoever logs them: the
handler's own structlog or ``logging`` lines included. One context variable set per record
keeps that cheap; the fields are only computed for lines actually written.

Public names: ``configure_logging``, ``get_logger``, ``LIBRDKAFKA_LOGGER``, ``current_record``,
``LogFields``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Protocol

import structlog

from oncepipe.conninfo import redact
from oncepipe.settings import Settings

__all__ = ["LIBRDKAFKA_LOGGER", "LogFields", "configure_logging", "current_record", "get_logger"]

LIBRDKAFKA_LOGGER = "oncepipe.librdkafka"


class LogFields(Protocol):
    """Something a log line can name: a record with its coordinates."""

    def log_fields(self) -> dict[str, object]:
        """The fields to add to the line."""


current_record: ContextVar[LogFields | None] = ContextVar("oncepipe_current_record", default=None)
"""The record being handled now, if any: its ``log_fields()`` go on every line logged."""


def _add_record(_logger: Any, _method: str, event_dict: Any) -> Any:
    record = current_record.get()
    if record is not None:
        for key, value in record.log_fields().items():
            event_dict.setdefault(key, value)
    return event_dict


class _Redactor:
    """A last processor: masks secrets in the rendered line, whatever field carried them."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._secrets = tuple(secrets)

    def __call__(self, _logger: Any, _method: str, line: Any) -> Any:
        return redact(line, self._secrets) if isinstance(line, str) else line


def configure_logging(settings: Settings, *, client_logs: bool = True) -> None:
    """Configure structlog and stdlib logging once, at the entry point; logs go to stderr.

    ``client_logs=False`` (one-shot commands) keeps librdkafka's lines to DEBUG level: its
    connection errors would only repeat, line after line, the one error the command reports.
    """
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors="NO_COLOR" not in os.environ)
    )
    redactor = _Redactor(settings.secrets())
    level = logging.getLevelNamesMapping()[settings.log_level]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_record,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
            redactor,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
                redactor,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = not client_logs and level > logging.DEBUG
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.CRITICAL if quiet else logging.NOTSET)


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger bound to ``component=name`` and any extra context."""
    return structlog.get_logger(component=name, **context)
