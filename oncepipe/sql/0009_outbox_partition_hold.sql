-- depends: 0004_outbox
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The relay holds back the rows of a partition it could not publish to (no leader, too few
-- in-sync replicas, refused) instead of stalling every topic behind them: each such row keeps
-- the partition it was sent to and the time before which that partition is not tried again.
ALTER TABLE oncepipe.outbox
    ADD COLUMN kafka_partition integer,
    ADD COLUMN not_before      timestamptz;

-- The relay's "which partitions are held" look-up: only held, unpublished rows.
CREATE INDEX outbox_held_idx ON oncepipe.outbox (topic, kafka_partition, not_before)
    WHERE published_at IS NULL AND failed_at IS NULL AND not_before IS NOT NULL;
