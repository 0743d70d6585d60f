-- depends: 0014_roles
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Queue mode (README "Queue mode"): what each share-group member saw, for `oncepipe status`.
-- The client has no share-group admin API, so the workers report their own counts here (one
-- row per worker process, upserted at most once a second; left_at set on a clean stop). SQL
-- in consumers/queue_counts.py and cli/status.py only.
CREATE TABLE oncepipe.queue_members (
    consumer_group text        NOT NULL,
    member         text        NOT NULL,
    acquired       bigint      NOT NULL DEFAULT 0,
    in_flight      bigint      NOT NULL DEFAULT 0,
    acknowledged   bigint      NOT NULL DEFAULT 0,
    released       bigint      NOT NULL DEFAULT 0,
    redelivered    bigint      NOT NULL DEFAULT 0,
    refused        bigint      NOT NULL DEFAULT 0,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    left_at        timestamptz,
    PRIMARY KEY (consumer_group, member)
);

-- Created by the login when this runs in the same `migrate` as 0014: hand it to the owner.
ALTER TABLE oncepipe.queue_members OWNER TO oncepipe_owner;

INSERT INTO oncepipe.role_grants (role, object, privileges) VALUES
    ('oncepipe_consumer', 'TABLE oncepipe.queue_members', 'SELECT, INSERT, UPDATE');
