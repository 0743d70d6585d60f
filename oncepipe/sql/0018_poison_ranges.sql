-- depends: 0012_poison 0014_roles
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Crash-loop detection counts by overlapping ranges: an attempt whose range overlaps the
-- previous uncommitted ones of its partition counts as the same suspect range, even when a
-- differently shaped batch committed the records before the killer in between. end_offset
-- stays the furthest end attempted without a commit; last_end is the end of the latest
-- attempt, so the next attempt can tell whether that one committed (its start is at or past
-- last_end) and leave it out of the count.
ALTER TABLE oncepipe.consumer_attempts ADD COLUMN last_end bigint;
