"""Structured logging: JSON lines in production, readable console output on a terminal.

Public names: ``configure_logging``, ``get_logger``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

from oncepipe.settings import Settings

__all__ = ["configure_logging", "get_logger"]


def configure_logging(settings: Settings) -> None:
    """Configure structlog and stdlib logging once, at the entry point; logs go to stderr."""
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors="NO_COLOR" not in os.environ)
    )
    level = logging.getLevelNamesMapping()[settings.log_level]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def get_logger(name: str, **context: Any) -> Any:
    """A structlog logger bound to ``component=name`` and any extra context."""
    return structlog.get_logger(component=name, **context)
