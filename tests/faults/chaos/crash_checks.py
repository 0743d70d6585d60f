"""Crash-loop detection under random kills: no innocent record becomes a ``crash`` dead letter.

The run's records hold no killer (nothing makes a handler die on its own), while the faults
SIGKILL workers at random, with the attempt record on (the default): any dead letter of stage
``crash`` is then an innocent record blamed for a random kill.

Public names: ``check_no_innocent_crash_dead_letters``.
"""

from __future__ import annotations

from consumers.deadletter_headers import CONSUMER_GROUP, STAGE
from tests.faults.chaos.evidence import Evidence, source_of
from tests.faults.chaos.poison_checks import killer_sources
from tests.faults.chaos.verdict import CheckResult, Observations

__all__ = ["check_no_innocent_crash_dead_letters"]


def check_no_innocent_crash_dead_letters(ev: Evidence, _obs: Observations) -> CheckResult:
    """Every dead letter of the group read back from ``.dlq`` has a stage other than ``crash``."""
    result = CheckResult("no_innocent_crash_dead_letters", "23.2")
    killers = killer_sources(ev)  # the poison faults' killer records are guilty
    for records in ev.dlq_records.values():
        for record in records:
            if record.headers.get(CONSUMER_GROUP) != ev.group:
                continue  # another group's dead letter: checked with that group
            result.checked += 1
            if record.headers.get(STAGE) == "crash" and source_of(record) not in killers:
                result.violate(f"innocent record {source_of(record)} dead-lettered as a crash")
    result.checked += 1  # the run itself: no crash dead letter is a pass
    return result
