"""Settings of queue mode (``ONCEPIPE_QUEUE_*``): the share group's locks and limits.

Public names: ``QueueSettings``, ``load_queue_settings``, ``GroupLimits``, ``consume_mode``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from oncepipe.errors import ConfigError
from oncepipe.settings import read_settings

__all__ = ["MODES", "GroupLimits", "QueueSettings", "consume_mode", "load_queue_settings"]

MODES = ("partition", "queue")
MODE_ENV = "ONCEPIPE_CONSUMER_MODE"

LOCK_DURATION = "share.record.lock.duration.ms"
DELIVERY_LIMIT = "share.delivery.count.limit"


class QueueSettings(BaseSettings):
    """How a queue-mode worker configures its share group and bounds its batches."""

    model_config = SettingsConfigDict(
        env_prefix="ONCEPIPE_QUEUE_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    configure_group: bool = Field(
        True,
        description="at start, set the group configs share.auto.offset.reset=earliest and "
        "share.isolation.level=read_committed (and the two below when given)",
    )
    lock_duration_ms: int | None = Field(
        None, ge=1_000, description="set the group's record lock duration (default: keep it)"
    )
    delivery_limit: int | None = Field(
        None,
        ge=4,
        le=10,
        description="set the group's delivery count limit (default: keep it, 5); 4 at least, "
        "so the innocent neighbours of a killer record never reach it",
    )
    batch_deadline_s: float | None = Field(
        None,
        gt=0,
        description="a poll's records not committed by then are released (default: half the "
        "lock duration); must be below the lock duration",
    )

    def group_configs(self) -> dict[str, str]:
        """The share-group configs this worker sets when it starts."""
        configs = {
            "share.auto.offset.reset": "earliest",
            "share.isolation.level": "read_committed",
        }
        if self.lock_duration_ms is not None:
            configs[LOCK_DURATION] = str(self.lock_duration_ms)
        if self.delivery_limit is not None:
            configs[DELIVERY_LIMIT] = str(self.delivery_limit)
        return configs


@dataclass(frozen=True)
class GroupLimits:
    """What the share group applies: the lock duration, the delivery limit, the deadline."""

    lock_duration_s: float
    delivery_limit: int
    batch_deadline_s: float

    @classmethod
    def of(cls, configs: dict[str, str], settings: QueueSettings) -> GroupLimits:
        """From the group's configs as the broker reports them; a deadline past the lock fails."""
        lock_s = int(configs.get(LOCK_DURATION, "30000")) / 1000
        limit = int(configs.get(DELIVERY_LIMIT, "5"))
        deadline = settings.batch_deadline_s if settings.batch_deadline_s else lock_s / 2
        if deadline >= lock_s:
            raise ConfigError(
                f"ONCEPIPE_QUEUE_BATCH_DEADLINE_S={deadline:g} is not below the group's record "
                f"lock duration ({lock_s:g} s): a batch would outlive its locks; lower it"
            )
        return cls(lock_s, limit, deadline)


def load_queue_settings(**overrides: Any) -> QueueSettings:
    """Read queue settings from the environment plus overrides (None means not given)."""
    return read_settings(QueueSettings, overrides, what="queue configuration")


def consume_mode(flag: str | None) -> str:
    """``--mode``, else ``ONCEPIPE_CONSUMER_MODE``, else ``partition``; anything else refused."""
    mode = flag or os.environ.get(MODE_ENV) or "partition"
    if mode not in MODES:
        raise ConfigError(
            f"invalid consumer mode {mode!r} (--mode / {MODE_ENV}): choose partition (a "
            "consumer group, the default) or queue (a share group, preview)"
        )
    return mode
