-- depends: 0003_consumer 0006_consumer_failures
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The inbox becomes RANGE-partitioned by applied_at (one partition per UTC day) so that its
-- retention is DROP TABLE of old partitions, not DELETE and VACUUM of millions of rows.
--
-- A partitioned table's unique constraints must contain the partition key, so
-- (consumer_group, event_id) can only be unique PER PARTITION: each partition has that unique
-- index, and oncepipe.inbox_claim() (below) looks the event ids up in the other partitions. The
-- existing table is converted in place: it becomes the partition oncepipe.inbox_legacy, keeping
-- its rows and its primary key, covering everything before the first daily partition, and it is
-- dropped like any other partition once its upper bound is older than the retention.
-- SQL of the inbox lives in consumers/inbox.py and consumers/inbox_partitions.py only.

ALTER TABLE oncepipe.inbox RENAME TO inbox_legacy;
ALTER INDEX oncepipe.inbox_pkey RENAME TO inbox_legacy_pkey;
ALTER INDEX oncepipe.inbox_applied_at_idx RENAME TO inbox_legacy_applied_at_idx;

CREATE TABLE oncepipe.inbox (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (applied_at);

-- Up to the end of today (UTC): the rows already there, and today's until midnight.
ALTER TABLE oncepipe.inbox ATTACH PARTITION oncepipe.inbox_legacy
    FOR VALUES FROM (MINVALUE) TO ((((now() AT TIME ZONE 'UTC')::date + 1)::timestamp) AT TIME ZONE 'UTC');

-- One day's partition, oncepipe.inbox_pYYYYMMDD, created standalone and then attached: ATTACH
-- takes SHARE UPDATE EXCLUSIVE on the parent, which running consumers' inserts do not conflict
-- with (CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE and queue them). Returns false
-- when it exists already.
CREATE FUNCTION oncepipe.inbox_create_partition(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'inbox_p' || to_char(p_day, 'YYYYMMDD');
    lower timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    upper timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass('oncepipe.' || name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE oncepipe.%I (LIKE oncepipe.inbox INCLUDING DEFAULTS)', name);
    EXECUTE format('CREATE UNIQUE INDEX %I ON oncepipe.%I (consumer_group, event_id)',
                   name || '_dedupe', name);
    EXECUTE format('ALTER TABLE oncepipe.inbox ATTACH PARTITION oncepipe.%I'
                   ' FOR VALUES FROM (%L) TO (%L)', name, lower, upper);
    RETURN true;
END;
$$;

-- The batch's inbox insert: returns the (topic, partition, offset) of the rows inserted, which
-- are the events not applied before.
--
-- 1. Lock the partition today's rows go to (routing is by now(), the transaction's start) in
--    ROW EXCLUSIVE mode, in a statement of its own, so the insert's snapshot is taken after it.
-- 2. In the first hour of a UTC day, also lock yesterday's partition in SHARE mode: it waits for
--    the transactions still inserting there (started before midnight) to commit and keeps new
--    ones out until this one commits, so a duplicate of one event arriving on two partitions at
--    midnight meets the other copy either in a unique index or in the look-up below. SHARE
--    locks do not conflict with each other; only that hour, so an anti-wraparound VACUUM of an
--    old day never queues consumers.
-- 3. Find the batch's event ids any partition has, in a statement of its own: per id, one
--    probe of each partition's unique index on both columns (a nested loop the LATERAL ...
--    LIMIT 1 forces), whatever the statistics say.
-- 4. Insert the others; ON CONFLICT DO NOTHING absorbs a concurrent insert of the same event
--    into today's partition, and a second copy inside the same batch.
CREATE FUNCTION oncepipe.inbox_claim(
    p_group text, p_event_ids uuid[], p_topics text[], p_partitions integer[], p_offsets bigint[]
) RETURNS TABLE (topic text, partition integer, "offset" bigint)
LANGUAGE plpgsql
-- Step 3 must probe each partition's unique index with both columns: a plan built on stale
-- statistics (a day's partition is new and unanalyzed every morning) could otherwise read all
-- of a group's rows per batch, a cost growing with the table.
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    target regclass := coalesce(to_regclass('oncepipe.inbox_p' || to_char(today, 'YYYYMMDD')),
                                to_regclass('oncepipe.inbox_legacy'));
    previous regclass := to_regclass('oncepipe.inbox_p' || to_char(today - 1, 'YYYYMMDD'));
    seen uuid[];
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'oncepipe.inbox has no partition for %', today
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'run oncepipe inbox maintain (consumers also do it every hour)';
    END IF;
    EXECUTE format('LOCK TABLE %s IN ROW EXCLUSIVE MODE', target);
    IF previous IS NULL THEN
        -- Yesterday may still be inside the converted table's range (or it is gone: NULL).
        previous := nullif(to_regclass('oncepipe.inbox_legacy'), target);
    END IF;
    IF previous IS NOT NULL AND now() < (today::timestamp AT TIME ZONE 'UTC') + interval '1 hour'
    THEN
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', previous);
    END IF;
    SELECT coalesce(array_agg(x.event_id), '{}') INTO seen
    FROM unnest(p_event_ids) AS x(event_id)
    CROSS JOIN LATERAL (
        SELECT 1 FROM oncepipe.inbox AS o
        WHERE o.consumer_group = p_group AND o.event_id = x.event_id
        LIMIT 1
    ) AS hit;
    RETURN QUERY
    INSERT INTO oncepipe.inbox AS i (consumer_group, event_id, topic, partition, "offset")
    SELECT p_group, e.event_id, e.topic, e.partition, e."offset"
    FROM unnest(p_event_ids, p_topics, p_partitions, p_offsets) WITH ORDINALITY
         AS e(event_id, topic, partition, "offset", n)
    WHERE NOT (e.event_id = ANY(seen))
    ORDER BY e.n
    ON CONFLICT DO NOTHING
    RETURNING i.topic, i.partition, i."offset";
END;
$$;

-- Today is the legacy partition's; the next days get their own now.
SELECT oncepipe.inbox_create_partition((now() AT TIME ZONE 'UTC')::date + d) FROM generate_series(1, 3) AS d;
