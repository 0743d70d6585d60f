-- depends: 0014_roles
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The erasure ledger: one row per purge of dead letters, erasure of a key or retention run
-- (`oncepipe dlq purge`, `oncepipe maintain`): who, when, what was asked and how many rows each
-- table lost. Never the payload, never the key itself (its SHA-256 only). SQL in
-- consumers/dlq/purge.py only.
CREATE TABLE oncepipe.erasure_ledger (
    id           bigserial   PRIMARY KEY,
    action       text        NOT NULL CHECK (action IN ('purge', 'erase', 'retention')),
    requested_by text        NOT NULL,
    db_user      text        NOT NULL DEFAULT session_user,
    requested_at timestamptz NOT NULL DEFAULT now(),
    criteria     jsonb       NOT NULL,
    counts       jsonb       NOT NULL
);

-- Created by the login when this runs in the same `migrate` as 0014 (before the runner could
-- act as the owner): hand it to the owner, as 0014 did with the tables before it.
ALTER TABLE oncepipe.erasure_ledger OWNER TO oncepipe_owner;

INSERT INTO oncepipe.role_grants (role, object, privileges) VALUES
    -- the dlq tool purges dead letters (outbox rows of *.dlq topics) and records it. Erasing
    -- a key (inbox rows, parked events, retries too) is the migrator's, acting as the owner.
    ('oncepipe_dlq', 'TABLE oncepipe.erasure_ledger', 'SELECT, INSERT'),
    ('oncepipe_dlq', 'SEQUENCE oncepipe.erasure_ledger_id_seq', 'USAGE'),
    ('oncepipe_dlq', 'TABLE oncepipe.outbox', 'SELECT (id, topic, key, created_at), DELETE')
ON CONFLICT (role, object) DO UPDATE SET privileges = excluded.privileges;
-- `oncepipe migrate` grants these rows (oncepipe.apply_grants) once every migration ran.
