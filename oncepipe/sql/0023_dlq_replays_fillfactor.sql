-- depends: 0005_dlq_replay_ledger
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- A replay claims each dead letter (INSERT) and then marks it sent or failed (UPDATE of
-- columns no index covers). With pages filled to the brim the new row version lands on
-- another page, so every mark also inserts into the primary key and the event_id index
-- (about 4 WAL records per row). Pages kept half free make the mark a heap-only (HOT) update
-- on the same page: about 1 WAL record per row, 3-4x less time per chunk. Applies to pages
-- written from now on; the ledger's SQL lives in consumers/dlq/ledger.py.
ALTER TABLE oncepipe.dlq_replays SET (fillfactor = 50);
