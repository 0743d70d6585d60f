-- depends: 0014_roles
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The inbox look-up skips the daily partitions an event cannot be in, so its cost stays flat
-- with the retention instead of growing by one index probe per partition held.
--
-- An event id that is a UUIDv7 (RFC 9562: 48-bit unix milliseconds, version 7, variant 10)
-- carries its creation time T. Its "look-from" is T - 1 hour. inbox_claim keeps this rule for
-- every row it inserts, whatever the clocks did:
--     a row applied at A (its applied_at, the inserting transaction's now()) either has
--     A >= look-from(event_id), or a row (group, event_id, applied_at <= A) in
--     oncepipe.inbox_ahead (the id claimed a time more than an hour ahead of PostgreSQL's).
-- So a copy of the event can only sit in a partition covering least(ahead's applied_at,
-- look-from) or later, and the look-up of an id probes only those partitions (run-time
-- partition pruning on the per-id probe). Ids that are not version 7 (uuid4 from an
-- upstream, uuid5 of an idempotency key) have no look-from and probe every partition, as
-- before. A row of inbox_ahead only widens a look-up: one left behind is harmless; it may go
-- once no partition that could hold its inbox row is left (consumers/inbox_partitions.py).

-- The creation time of a UUIDv7 in unix milliseconds; NULL for any other version or variant.
-- Single expressions of immutable functions, so PostgreSQL inlines them into the look-up.
CREATE FUNCTION oncepipe.uuid_v7_ms(p_id uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN get_byte(uuid_send(p_id), 6) >> 4 = 7 AND get_byte(uuid_send(p_id), 8) >> 6 = 2
        THEN ('x' || substr(encode(uuid_send(p_id), 'hex'), 1, 12))::bit(48)::bigint
    END
$$;

-- The earliest applied_at a row of this id may have without a row in inbox_ahead: an hour
-- before the id's time, or -infinity (every partition) for an id that is not a UUIDv7. The
-- rows already stored keep to the margin they were inserted with: it may grow, never shrink.
CREATE FUNCTION oncepipe.inbox_look_from(p_id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(to_timestamp((oncepipe.uuid_v7_ms(p_id) - 3600000) / 1000.0),
                    '-infinity'::timestamptz)
$$;

-- The rows applied before their id's look-from, by (group, event_id): small, not partitioned.
CREATE TABLE oncepipe.inbox_ahead (
    consumer_group text        NOT NULL,
    event_id       uuid        NOT NULL,
    applied_at     timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
-- Created by the login when this runs in the same `migrate` as 0014: hand it to the owner.
ALTER TABLE oncepipe.inbox_ahead OWNER TO oncepipe_owner;
ALTER FUNCTION oncepipe.uuid_v7_ms(uuid) OWNER TO oncepipe_owner;
ALTER FUNCTION oncepipe.inbox_look_from(uuid) OWNER TO oncepipe_owner;

INSERT INTO oncepipe.role_grants (role, object, privileges) VALUES
    ('oncepipe_consumer', 'TABLE oncepipe.inbox_ahead', 'SELECT, INSERT, UPDATE'),
    ('oncepipe_consumer', 'FUNCTION oncepipe.uuid_v7_ms(uuid)', 'EXECUTE'),
    ('oncepipe_consumer', 'FUNCTION oncepipe.inbox_look_from(uuid)', 'EXECUTE');

-- The rows already there that break the rule get their inbox_ahead row. Each partition is
-- locked in SHARE mode first (not the parent: a consumer holding today's partition would then
-- wait for this on the parent while this waits for it), so no batch of the previous
-- inbox_claim commits a row this scan cannot see; batches wait for this migration's commit.
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN
        SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits AS i
        WHERE i.inhparent = 'oncepipe.inbox'::regclass ORDER BY i.inhrelid
    LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', part);
    END LOOP;
END;
$$;
INSERT INTO oncepipe.inbox_ahead (consumer_group, event_id, applied_at)
SELECT o.consumer_group, o.event_id, min(o.applied_at)
FROM oncepipe.inbox AS o
WHERE oncepipe.inbox_look_from(o.event_id) > o.applied_at
GROUP BY o.consumer_group, o.event_id;

-- The batch's inbox insert, as in 0014, with the look-up pruned per id:
-- 3. per id, one probe of the unique index of each partition from least(inbox_ahead's
--    applied_at, look-from) on (the LATERAL ... LIMIT 1 forces a nested loop, whose inner
--    Append PostgreSQL prunes at run time for each outer row's bound);
-- 4. insert the others, and an inbox_ahead row for each inserted row applied before its
--    id's look-from, in the same statement (so in the same transaction).
CREATE OR REPLACE FUNCTION oncepipe.inbox_claim(
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
            USING ERRCODE = 'check_violation',
                  HINT = 'run oncepipe maintain (as the owner; schedule it daily)';
    END IF;
    EXECUTE format('LOCK TABLE %s IN ROW EXCLUSIVE MODE', target);
    IF previous IS NULL THEN
        -- Yesterday may still be inside the converted table's range (or it is gone: NULL).
        previous := nullif(to_regclass('oncepipe.inbox_legacy'), target);
    END IF;
    -- The midnight rule of 0007: a copy committed into yesterday's partition by a batch that
    -- started before midnight is visible to the look-up below, and yesterday's partition is
    -- probed for it (its applied_at is at least its id's look-from, or inbox_ahead has it).
    IF previous IS NOT NULL AND now() < (today::timestamp AT TIME ZONE 'UTC') + interval '1 hour'
    THEN
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', previous);
    END IF;
    SELECT coalesce(array_agg(x.event_id), '{}') INTO seen
    FROM unnest(p_event_ids) AS x(event_id)
    LEFT JOIN oncepipe.inbox_ahead AS a
        ON a.consumer_group = p_group AND a.event_id = x.event_id
    CROSS JOIN LATERAL (
        SELECT 1 FROM oncepipe.inbox AS o
        WHERE o.consumer_group = p_group AND o.event_id = x.event_id
          AND o.applied_at >= least(a.applied_at, oncepipe.inbox_look_from(x.event_id))
        LIMIT 1
    ) AS hit;
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO oncepipe.inbox AS i (consumer_group, event_id, topic, partition, "offset")
        SELECT p_group, e.event_id, e.topic, e.partition, e."offset"
        FROM unnest(p_event_ids, p_topics, p_partitions, p_offsets) WITH ORDINALITY
             AS e(event_id, topic, partition, "offset", n)
        WHERE NOT (e.event_id = ANY(seen))
        ORDER BY e.n
        ON CONFLICT DO NOTHING
        RETURNING i.event_id, i.topic, i.partition, i."offset", i.applied_at
    ), ahead AS (
        INSERT INTO oncepipe.inbox_ahead AS h (consumer_group, event_id, applied_at)
        SELECT p_group, r.event_id, r.applied_at FROM inserted AS r
        WHERE oncepipe.inbox_look_from(r.event_id) > r.applied_at
        ON CONFLICT (consumer_group, event_id)
            DO UPDATE SET applied_at = least(h.applied_at, excluded.applied_at)
    )
    SELECT r.topic, r.partition, r."offset" FROM inserted AS r;
END;
$$;
