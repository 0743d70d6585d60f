-- depends: 0010_consumer_owners
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Poison without disorder (--on-poison park-key). A blocker is the dead-lettered record that
-- blocks its key in a consumer group; the later events of that key are parked (their bytes
-- kept here, not applied, no inbox row) in the batch transaction that reads them. The worker
-- releases them in their original order, in one batch transaction, when the blocker's event
-- comes back (oncepipe dlq replay) and is applied, or once the blocker is discarded
-- (oncepipe dlq discard sets state 'discarded'). SQL in consumers/parking.py and
-- consumers/dlq/parked.py only.
CREATE TABLE oncepipe.parked_blockers (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    key            bytea       NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    event_id       text,
    state          text        NOT NULL DEFAULT 'parked' CHECK (state IN ('parked', 'discarded')),
    blocked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, key)
);
CREATE INDEX parked_blockers_source_idx
    ON oncepipe.parked_blockers (consumer_group, topic, partition, "offset");

CREATE TABLE oncepipe.parked_events (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    key            bytea       NOT NULL,
    event_id       uuid        NOT NULL,
    value          bytea,
    header_names   text[]      NOT NULL,
    header_values  bytea[]     NOT NULL,
    timestamp_ms   bigint,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    -- The order they are released in: the order they were parked (original order).
    seq            bigserial   NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition, "offset")
);
CREATE INDEX parked_events_key_idx ON oncepipe.parked_events (consumer_group, topic, key, seq);

-- `oncepipe dlq discard` records its decision in the replay ledger.
ALTER TABLE oncepipe.dlq_replays DROP CONSTRAINT dlq_replays_outcome_check;
ALTER TABLE oncepipe.dlq_replays ADD CONSTRAINT dlq_replays_outcome_check
    CHECK (outcome IN ('claimed', 'sent', 'failed', 'discarded'));

-- Crash-loop detection: each batch attempt, per partition, committed before the handler runs
-- (its own small transaction, synchronous_commit off). attempts counts the attempts at
-- start_offset that ended without a commit; past the limit the worker narrows the range
-- (start_offset .. narrow_until) to one record per batch, and a single record that reaches the
-- limit again is dead-lettered with stage 'crash'. SQL in consumers/attempts.py only.
CREATE TABLE oncepipe.consumer_attempts (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    start_offset   bigint      NOT NULL,
    end_offset     bigint      NOT NULL,
    attempts       integer     NOT NULL,
    narrow_until   bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Delayed retries (a handler raised RetryLater): the event waits here, out of its partition's
-- way, until due_at; the owner of its partition takes it into a batch then. history holds each
-- attempt (attempt, failed_at, delay_s, error) for the dead letter after the last tier.
-- SQL in consumers/retries.py only.
CREATE TABLE oncepipe.consumer_retries (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    key            bytea,
    event_id       uuid        NOT NULL,
    value          bytea,
    header_names   text[]      NOT NULL,
    header_values  bytea[]     NOT NULL,
    timestamp_ms   bigint,
    attempt        integer     NOT NULL,
    due_at         timestamptz NOT NULL,
    history        jsonb       NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition, "offset")
);
CREATE INDEX consumer_retries_due_idx ON oncepipe.consumer_retries (consumer_group, due_at);
