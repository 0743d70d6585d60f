"""What the upstream simulator submits for a plan (no services: submissions are generated only)."""

from __future__ import annotations

import hashlib
import json

from demo.simulator import NEW_ITEMS, SimulationPlan, Simulator, Submission
from oncepipe.settings import Settings
from schemas import Codec


def submissions(plan: SimulationPlan) -> list[Submission]:
    return [s for s, _ in Simulator(Settings(), Codec.load(), plan).submissions()]


def test_a_seed_submits_what_it_submitted_before_new_items_existed() -> None:
    # Pinned on the simulator before `new_item_rate`: chaos runs are replayed by their seed.
    plan = SimulationPlan(count=300, duplicate_rate=0.2, poison_rate=0.05, seed=7)
    fields = [[s.kind, s.event_id, s.item_id, s.poison_kind] for s in submissions(plan)]
    digest = hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:16]
    assert digest == "3180347e89464cbe"


def test_new_item_clicks_are_valid_events_on_a_few_new_items() -> None:
    plan = SimulationPlan(count=2000, items=50, duplicate_rate=0.1, new_item_rate=0.02, seed=3)
    subs = submissions(plan)
    new = [s for s in subs if s.item_id.startswith("new-item-")]
    assert 10 < len(new) < 100
    assert {s.kind for s in new} <= {"event", "duplicate"}
    assert {s.item_id for s in new} <= {f"new-item-{n}" for n in range(NEW_ITEMS)}
    assert sum(1 for s in subs if s.kind == "event") == 2000
