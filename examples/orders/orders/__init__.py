"""The orders example: a service, its events and two consumer groups, built on oncepipe.

- ``orders.service``: places an order (its ``orders`` row and its ``OrderPlaced`` event in one
  transaction, through the outbox), with psycopg 3 or with a SQLAlchemy session; idempotent on
  the client's request id;
- ``orders.handlers``: ``totals`` keeps per-customer totals and emits ``CustomerMilestone``
  events; ``milestone_log`` records those milestones in a second consumer group;
- ``orders.milestones``: which milestones an order reaches (no I/O);
- ``orders.tables``: the example's own tables (``tables.sql``);
- ``orders.load``: the load generator (client requests, some retried);
- ``python -m orders setup | load | report``: the command line of the example.

The event types are in the contract package ``orders_contract``, imported by the service and
the handlers: importing it registers them with oncepipe.
"""
