"""oncepipe: Kafka to PostgreSQL with exactly-once effects.

This package holds the shared plumbing (settings, client factories, errors, logging,
migrations) and the ``oncepipe`` CLI on top of everything.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
