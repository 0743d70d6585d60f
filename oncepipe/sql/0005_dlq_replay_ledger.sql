-- depends: 0001_oncepipe_schema
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- One row per dead letter that `oncepipe dlq replay` touched, keyed by where the dead letter
-- sits. A replay claims its rows first (a committed INSERT ... ON CONFLICT), sends only what
-- it claimed, then records the outcome, so two replays at once never both send a record.
-- Its SQL lives in consumers/dlq/ledger.py only.
CREATE TABLE oncepipe.dlq_replays (
    dlq_topic         text        NOT NULL,
    dlq_partition     integer     NOT NULL,
    dlq_offset        bigint      NOT NULL,
    source_topic      text,
    source_partition  integer,
    source_offset     bigint,
    event_id          text,
    destination_topic text        NOT NULL,
    -- claimed: a replay is sending it now (or died doing so); sent: the broker acknowledged
    -- it; failed: the broker refused it, and the next replay may claim it again.
    outcome           text        NOT NULL CHECK (outcome IN ('claimed', 'sent', 'failed')),
    -- Which replay of this dead letter the last send was (1, then 2, ... with --force).
    replay_count      integer     NOT NULL DEFAULT 1 CHECK (replay_count >= 1),
    claim_id          uuid        NOT NULL,
    claimed_at        timestamptz NOT NULL DEFAULT now(),
    replayed_at       timestamptz,
    replayed_by       text        NOT NULL,
    replay_partition  integer,
    replay_offset     bigint,
    error             text,
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);

CREATE INDEX dlq_replays_event_id_idx ON oncepipe.dlq_replays (event_id);
