-- depends: 0014_roles
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The dead-letter console (README "Dead-letter console"). SQL in console/ only.
--
-- dlq_index: one row per dead letter, what its pages list, filter and group by. The console
-- fills it from the dead-letter topics, each partition from where it stopped (dlq_index_progress),
-- so a page never reads a topic: 1,000,000 dead letters are paged and grouped here. Key, value,
-- headers and trace stay in Kafka; a dead letter's page reads that one record.
CREATE TABLE oncepipe.dlq_index (
    dlq_topic        text        NOT NULL,
    dlq_partition    integer     NOT NULL,
    dlq_offset       bigint      NOT NULL,
    dialect          text        NOT NULL,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    consumer_group   text,
    stage            text,
    error_class      text        NOT NULL,
    message          text        NOT NULL,  -- the masked first line the fingerprint is made of
    fingerprint      text        NOT NULL,
    failed_at        timestamptz,
    first_failure    timestamptz,
    event_id         text,
    event_type       text,
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);
CREATE INDEX dlq_index_fingerprint ON oncepipe.dlq_index (fingerprint, dlq_topic, dlq_partition,
    dlq_offset);
CREATE INDEX dlq_index_source ON oncepipe.dlq_index (source_topic, dlq_topic, dlq_partition,
    dlq_offset);

-- Failure groups per dead-letter topic, kept with the index (same transaction): the failures
-- page of a topic reads these instead of grouping a million rows.
CREATE TABLE oncepipe.dlq_index_groups (
    dlq_topic     text        NOT NULL,
    fingerprint   text        NOT NULL,
    error_class   text        NOT NULL,
    message       text        NOT NULL,
    letters       bigint      NOT NULL,
    first_seen    timestamptz,
    last_seen     timestamptz,
    source_topics text[]      NOT NULL DEFAULT '{}',
    PRIMARY KEY (dlq_topic, fingerprint)
);

-- Next offset to read per dead-letter partition.
CREATE TABLE oncepipe.dlq_index_progress (
    dlq_topic     text        NOT NULL,
    dlq_partition integer     NOT NULL,
    next_offset   bigint      NOT NULL,
    indexed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition)
);

-- Every console action: who, when, what (the selection), how many; dry-run previews too.
CREATE TABLE oncepipe.console_audit (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text        NOT NULL,
    action    text        NOT NULL CHECK (action IN ('replay', 'discard', 'preview', 'refused')),
    selection jsonb       NOT NULL,
    selected  integer     NOT NULL DEFAULT 0,
    done      integer     NOT NULL DEFAULT 0,
    detail    text
);
CREATE INDEX console_audit_at ON oncepipe.console_audit (at);

-- Applied in one run with 0014 (a new database), these were created by the login, not the
-- owner 0014 handed everything to: hand them over too (a no-op when run as the owner).
ALTER TABLE oncepipe.dlq_index OWNER TO oncepipe_owner;
ALTER TABLE oncepipe.dlq_index_progress OWNER TO oncepipe_owner;
ALTER TABLE oncepipe.dlq_index_groups OWNER TO oncepipe_owner;
ALTER TABLE oncepipe.console_audit OWNER TO oncepipe_owner;

-- The console runs as the dlq tool's role: what `dlq` may do, plus its index and audit, plus
-- what `oncepipe status` reads for the overview.
INSERT INTO oncepipe.role_grants (role, object, privileges) VALUES
    ('oncepipe_dlq', 'TABLE oncepipe.dlq_index', 'SELECT, INSERT, DELETE'),
    ('oncepipe_dlq', 'TABLE oncepipe.dlq_index_progress', 'SELECT, INSERT, UPDATE, DELETE'),
    ('oncepipe_dlq', 'TABLE oncepipe.dlq_index_groups', 'SELECT, INSERT, UPDATE, DELETE'),
    ('oncepipe_dlq', 'TABLE oncepipe.console_audit', 'SELECT, INSERT'),
    ('oncepipe_dlq', 'SEQUENCE oncepipe.console_audit_id_seq', 'USAGE'),
    ('oncepipe_dlq', 'TABLE oncepipe.consumer_offsets', 'SELECT'),
    ('oncepipe_dlq', 'TABLE oncepipe.consumer_owners', 'SELECT'),
    ('oncepipe_dlq', 'TABLE oncepipe.outbox', 'SELECT (id, topic, kafka_partition, not_before, created_at, published_at, failed_at)'),
    ('oncepipe_dlq', 'TABLE oncepipe.relay_shards', 'SELECT'),
    ('oncepipe_dlq', 'TABLE oncepipe.relay_members', 'SELECT')
ON CONFLICT (role, object) DO NOTHING;
