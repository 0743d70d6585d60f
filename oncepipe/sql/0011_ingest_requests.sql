-- depends: 0010_consumer_owners
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The HTTP ingest's idempotency records (README "HTTP ingest"): one row per (client,
-- Idempotency-Key) whose first request was accepted, written in the same transaction as that
-- request's outbox rows. A retry with the same key finds it and gets the stored response; the
-- same key with another body (request_hash differs) is refused. Rows older than the key window
-- (ONCEPIPE_INGEST_KEY_TTL_S) are deleted by the server. SQL in ingest/store.py only.
CREATE TABLE oncepipe.ingest_requests (
    client          text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    bytea       NOT NULL,
    status_code     integer     NOT NULL,
    response        bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, idempotency_key)
);
CREATE INDEX ingest_requests_created_at ON oncepipe.ingest_requests (created_at);
