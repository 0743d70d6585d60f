"""Side effects outside the database, the oncepipe way: a derived event, then a keyed call.

The inbox makes a handler's database writes exactly-once; it cannot do that for an HTTP call or
an e-mail, which happen outside the transaction. So:

1. the handler that decides (``side_effects.handlers:requests``, on ``events.click``) only
   emits a ``ReceiptRequested`` through the outbox, in its batch's transaction: exactly once;
2. a sender (``side_effects.handlers:sender``, on ``events.receipt_requested``) makes the call
   with ``Idempotency-Key: <event_id>``. It is at least once (a sender killed after the call and
   before its commit calls again); the downstream's idempotency key makes that once
   (``side_effects.downstream`` is such a downstream, for trying it).
"""
