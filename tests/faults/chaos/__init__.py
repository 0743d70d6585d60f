"""The chaos harness: a whole pipeline under seeded random faults, then the §2 invariants.

``python -m tests.faults.chaos --duration 600 --seed 42`` (``make chaos``) runs two upstream
simulators (outbox and direct), two relays and two or three consumers of one group, injects
faults at seeded random times, lets the pipeline drain and checks every invariant of
DESIGN.md §2 on the database and on the topics themselves.

Modules: ``config`` (what to run), ``pipeline`` (database, topics, worker processes),
``faults`` (each fault kind; ``hostile_faults`` the record and refusal ones, with ``hostile``
writing the records and ``outages`` the refusals), ``scheduler`` (when), ``monitor`` (checks
during the run), ``checks`` and ``letter_checks`` (checks after the drain, results in
``verdict``), ``report`` (the result table), ``defects`` (deliberately broken workers that the
checks must catch), ``run`` (all of it in order). The apply witness the checks count on is
``tests/fixtures/witness.py``.
"""
