-- depends: 0001_oncepipe_schema
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The consumer's bookkeeping (oncepipe schema) and the click handler's business tables (public).
CREATE SCHEMA IF NOT EXISTS oncepipe;

-- One row per event a consumer group applied: the dedupe record. A batch inserts its events
-- here first (ON CONFLICT DO NOTHING) and hands only the rows it inserted to the handler.
-- Its SQL lives in consumers/inbox.py only, so making it time-partitioned later is one change.
CREATE TABLE oncepipe.inbox (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

CREATE INDEX inbox_applied_at_idx ON oncepipe.inbox (applied_at);

-- The next Kafka offset to apply, per group and partition, written in the same transaction
-- as the effects of every message below it. Updates are a compare-and-set on next_offset,
-- which is what fences a consumer that lost its partition.
CREATE TABLE oncepipe.consumer_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    next_offset    bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- The click handler's tables. Each consumer group is an independent pipeline, so its
-- effects are keyed by the group: two groups reading the same topic never add to one counter.
CREATE TABLE public.click_events (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    user_id        text        NOT NULL,
    item_id        text        NOT NULL,
    action         text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    session_id     text        NOT NULL,
    surface        text        NOT NULL,
    context        jsonb,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    -- No ON CONFLICT on purpose: a second insert of one event would be a bug and must fail.
    PRIMARY KEY (consumer_group, event_id)
);

-- Counters are incremented (count = count + n), not recomputed: they are only right if every
-- event is applied exactly once, which is what the inbox guarantees.
CREATE TABLE public.item_click_counts (
    consumer_group text   NOT NULL,
    item_id        text   NOT NULL,
    action         text   NOT NULL,
    count          bigint NOT NULL,
    PRIMARY KEY (consumer_group, item_id, action)
);

CREATE TABLE public.user_item_click_counts (
    consumer_group text   NOT NULL,
    user_id        text   NOT NULL,
    item_id        text   NOT NULL,
    count          bigint NOT NULL,
    PRIMARY KEY (consumer_group, user_id, item_id)
);
