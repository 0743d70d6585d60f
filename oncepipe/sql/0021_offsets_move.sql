-- depends: 0014_roles
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- The batch's offset compare-and-set as one function that RAISES when it is fenced, so that a
-- worker can send it and the COMMIT in one round trip (psycopg pipeline mode): a fenced batch's
-- error aborts the transaction and the COMMIT that follows it becomes a rollback. The
-- statements are those consumers/offsets.py ran one by one before (expand only: nothing else
-- changes). SQL of the offsets lives in consumers/offsets.py and here.
--
-- 1. Partitions with a stored row: UPDATE ... WHERE next_offset = expected (under READ
--    COMMITTED a concurrent writer's row is re-checked after it commits, so a changed value
--    matches no row).
-- 2. Partitions without one (expected NULL): INSERT ... ON CONFLICT DO NOTHING.
-- 3. Fewer rows written than moves: SQLSTATE OP409 (class OP: oncepipe's own), which the
--    worker turns into FencedError.
CREATE FUNCTION oncepipe.consumer_offsets_move(
    p_group text, p_topics text[], p_partitions integer[], p_expected bigint[], p_next bigint[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    updated bigint;
    inserted bigint;
BEGIN
    UPDATE oncepipe.consumer_offsets AS o
    SET next_offset = m.next_offset, updated_at = now()
    FROM unnest(p_topics, p_partitions, p_expected, p_next)
         AS m(topic, partition, expected, next_offset)
    WHERE o.consumer_group = p_group AND o.topic = m.topic AND o.partition = m.partition
      AND m.expected IS NOT NULL AND o.next_offset = m.expected;
    GET DIAGNOSTICS updated = ROW_COUNT;
    INSERT INTO oncepipe.consumer_offsets (consumer_group, topic, partition, next_offset)
    SELECT p_group, m.topic, m.partition, m.next_offset
    FROM unnest(p_topics, p_partitions, p_expected, p_next)
         AS m(topic, partition, expected, next_offset)
    WHERE m.expected IS NULL
    ON CONFLICT (consumer_group, topic, partition) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF updated + inserted <> cardinality(p_topics) THEN
        RAISE EXCEPTION 'offset compare-and-set wrote % of % partitions for group %',
            updated + inserted, cardinality(p_topics), quote_literal(p_group)
            USING ERRCODE = 'OP409';
    END IF;
END;
$$;
ALTER FUNCTION oncepipe.consumer_offsets_move(text, text[], integer[], bigint[], bigint[])
    OWNER TO oncepipe_owner;
REVOKE EXECUTE ON FUNCTION
    oncepipe.consumer_offsets_move(text, text[], integer[], bigint[], bigint[]) FROM PUBLIC;

INSERT INTO oncepipe.role_grants (role, object, privileges) VALUES
    ('oncepipe_consumer',
     'FUNCTION oncepipe.consumer_offsets_move(text, text[], integer[], bigint[], bigint[])',
     'EXECUTE')
ON CONFLICT (role, object) DO UPDATE SET privileges = excluded.privileges;
-- `oncepipe migrate` grants these rows (oncepipe.apply_grants) once every migration ran.
