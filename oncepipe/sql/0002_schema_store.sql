-- depends: 0001_oncepipe_schema
-- The schema store (owned by schemas/store.py): every writer schema a producer ships, keyed by
-- its fingerprint, so consumers can read versions they do not ship yet. Rows are immutable:
-- a fingerprint names one schema forever, so producers insert with ON CONFLICT DO NOTHING.
CREATE TABLE oncepipe.schema_registry (
    fingerprint   text PRIMARY KEY CHECK (fingerprint ~ '^[0-9a-f]{16}$'),
    event_type    text NOT NULL,
    schema_json   text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);
