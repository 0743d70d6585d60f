-- depends: 0007_inbox_partitioned 0008_outbox_bytes 0010_consumer_owners
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Least privilege: the oncepipe schema and everything in it belong to a NOLOGIN owner,
-- oncepipe_owner, that `oncepipe migrate` and `oncepipe maintain` act as (SET ROLE); each
-- component logs in with a role of its own holding only the grants listed in
-- oncepipe.role_grants. Run once by a role that may create roles (a superuser, or one with
-- CREATEROLE that owns the current objects); roles are cluster-wide, so a second database of
-- the same cluster reuses them.

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('oncepipe_owner', false),
        ('oncepipe_migrator', true),
        ('oncepipe_relay', true),
        ('oncepipe_producer', true),
        ('oncepipe_consumer', true),
        ('oncepipe_dlq', true),
        ('oncepipe_ingest', true)
    ) AS v(name, login) LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s', r.name,
                               CASE WHEN r.login THEN 'LOGIN' ELSE 'NOLOGIN' END);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a migration of another database
            END;
        END IF;
    END LOOP;
END;
$$;

-- The migrator logs in and acts as the owner; so may whoever runs this migration (needed to
-- hand objects over, and for the next runs of `oncepipe migrate` under that login).
GRANT oncepipe_owner TO oncepipe_migrator;
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT oncepipe_owner TO %I', current_user);
    END IF;
END;
$$;

-- Hand the schema and everything in it to the owner (indexes and owned sequences follow
-- their tables). Tables first: a partition's owner may differ from its parent's.
DO $$
DECLARE
    r record;
BEGIN
    EXECUTE 'ALTER SCHEMA oncepipe OWNER TO oncepipe_owner';
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relkind
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'oncepipe'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND NOT EXISTS (  -- owned sequences move with their table
              SELECT FROM pg_catalog.pg_depend AS d
              WHERE d.objid = c.oid AND d.deptype IN ('a', 'i') AND c.relkind = 'S')
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO oncepipe_owner', r.rel);
    END LOOP;
    FOR r IN
        SELECT p.oid::regprocedure AS fn FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'oncepipe'::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO oncepipe_owner', r.fn);
    END LOOP;
    -- yoyo's bookkeeping (public) is written by `oncepipe migrate` while it acts as the owner.
    FOR r IN
        SELECT c.oid::regclass AS rel FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
          AND (c.relname LIKE '\_yoyo%' OR c.relname = 'yoyo_lock')
    LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO oncepipe_owner', r.rel);
    END LOOP;
END;
$$;

-- Nobody but the owner creates anything: not in oncepipe, not in public (PostgreSQL 15 and
-- later already refuse CREATE on public to PUBLIC; older versions granted it).
REVOKE ALL ON SCHEMA oncepipe FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Functions are executable by PUBLIC unless revoked: each role gets the ones it calls.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA oncepipe FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE oncepipe_owner IN SCHEMA oncepipe
    REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The grant layout: one row per (role, object, privileges). `oncepipe migrate` applies every
-- row whose object exists after each run (oncepipe.apply_grants), so a migration adding a
-- table adds one INSERT line here, and a row naming a table that lands later (an older
-- database, a branch merged afterwards) takes effect once the table exists. A partitioned
-- table's grants also go to each of its partitions, present and future (inbox_create_partition
-- applies them). Rows only grant: removing a privilege takes a REVOKE in a migration.
CREATE TABLE oncepipe.role_grants (
    role       name NOT NULL,
    object     text NOT NULL CHECK (object ~ '^(TABLE|SEQUENCE|FUNCTION|SCHEMA) '),
    privileges text NOT NULL,
    PRIMARY KEY (role, object)
);

INSERT INTO oncepipe.role_grants (role, object, privileges) VALUES
    -- relay: reads what to publish, marks it, deletes published rows past their retention.
    ('oncepipe_relay', 'SCHEMA oncepipe', 'USAGE'),
    ('oncepipe_relay', 'TABLE oncepipe.outbox', 'SELECT, UPDATE, DELETE'),
    -- its shard leases and heartbeat (0013); the claim log is written by a SECURITY DEFINER
    -- trigger, so no relay can write a claim of its own.
    ('oncepipe_relay', 'TABLE oncepipe.relay_shards', 'SELECT, UPDATE'),
    ('oncepipe_relay', 'TABLE oncepipe.relay_members', 'SELECT, INSERT, UPDATE, DELETE'),
    -- producers and upstream services: enqueue events, register their writer schemas.
    ('oncepipe_producer', 'SCHEMA oncepipe', 'USAGE'),
    ('oncepipe_producer', 'TABLE oncepipe.outbox', 'INSERT, SELECT (id, topic, dedupe_id)'),
    ('oncepipe_producer', 'SEQUENCE oncepipe.outbox_id_seq', 'USAGE'),
    ('oncepipe_producer', 'FUNCTION oncepipe.enqueue(text, text, bytea, bytea, jsonb)', 'EXECUTE'),
    ('oncepipe_producer', 'FUNCTION oncepipe.enqueue(text, text, bytea, bytea, bytea[], bytea[])', 'EXECUTE'),
    ('oncepipe_producer', 'TABLE oncepipe.schema_registry', 'SELECT, INSERT'),
    -- consumers: the inbox (UPDATE only because PostgreSQL asks for it to LOCK a table IN
    -- SHARE MODE, which inbox_claim does on yesterday's partition; nothing updates inbox rows),
    -- offsets, failures, owners, dead letters into the outbox, writer schemas to decode.
    ('oncepipe_consumer', 'SCHEMA oncepipe', 'USAGE'),
    ('oncepipe_consumer', 'TABLE oncepipe.inbox', 'SELECT, INSERT, UPDATE'),
    ('oncepipe_consumer', 'FUNCTION oncepipe.inbox_claim(text, uuid[], text[], integer[], bigint[])', 'EXECUTE'),
    ('oncepipe_consumer', 'TABLE oncepipe.consumer_offsets', 'SELECT, INSERT, UPDATE'),
    ('oncepipe_consumer', 'TABLE oncepipe.consumer_failures', 'SELECT, INSERT, UPDATE, DELETE'),
    ('oncepipe_consumer', 'TABLE oncepipe.consumer_owners', 'SELECT, INSERT, UPDATE'),
    ('oncepipe_consumer', 'TABLE oncepipe.outbox', 'INSERT, SELECT (id, topic, dedupe_id)'),
    ('oncepipe_consumer', 'SEQUENCE oncepipe.outbox_id_seq', 'USAGE'),
    ('oncepipe_consumer', 'FUNCTION oncepipe.enqueue(text, text, bytea, bytea, bytea[], bytea[])', 'EXECUTE'),
    ('oncepipe_consumer', 'TABLE oncepipe.schema_registry', 'SELECT, INSERT'),
    -- poison without disorder (0012): parked keys and events, batch attempts, delayed retries.
    ('oncepipe_consumer', 'TABLE oncepipe.parked_blockers', 'SELECT, INSERT, UPDATE, DELETE'),
    ('oncepipe_consumer', 'TABLE oncepipe.parked_events', 'SELECT, INSERT, DELETE'),
    ('oncepipe_consumer', 'SEQUENCE oncepipe.parked_events_seq_seq', 'USAGE'),
    ('oncepipe_consumer', 'TABLE oncepipe.consumer_attempts', 'SELECT, INSERT, UPDATE, DELETE'),
    ('oncepipe_consumer', 'TABLE oncepipe.consumer_retries', 'SELECT, INSERT, UPDATE, DELETE'),
    -- dlq tool: its replay ledger, and what it reads to list and decode dead letters.
    ('oncepipe_dlq', 'SCHEMA oncepipe', 'USAGE'),
    ('oncepipe_dlq', 'TABLE oncepipe.dlq_replays', 'SELECT, INSERT, UPDATE'),
    ('oncepipe_dlq', 'TABLE oncepipe.schema_registry', 'SELECT'),
    ('oncepipe_dlq', 'TABLE oncepipe.consumer_failures', 'SELECT'),
    -- parked counts per blocker, and `dlq discard` marking a blocker discarded (0012).
    ('oncepipe_dlq', 'TABLE oncepipe.parked_blockers', 'SELECT, UPDATE'),
    ('oncepipe_dlq', 'TABLE oncepipe.parked_events', 'SELECT'),
    -- HTTP ingest: enqueue events, and its idempotency records (migration 0011).
    ('oncepipe_ingest', 'SCHEMA oncepipe', 'USAGE'),
    ('oncepipe_ingest', 'TABLE oncepipe.outbox', 'INSERT, SELECT (id, topic, dedupe_id)'),
    ('oncepipe_ingest', 'SEQUENCE oncepipe.outbox_id_seq', 'USAGE'),
    ('oncepipe_ingest', 'FUNCTION oncepipe.enqueue(text, text, bytea, bytea, bytea[], bytea[])', 'EXECUTE'),
    ('oncepipe_ingest', 'TABLE oncepipe.schema_registry', 'SELECT'),
    ('oncepipe_ingest', 'TABLE oncepipe.ingest_requests', 'SELECT, INSERT, UPDATE, DELETE');

-- Grant every row of oncepipe.role_grants whose object exists; returns how many were applied.
-- Runs as the owner (migrate, maintain, inbox_create_partition).
CREATE FUNCTION oncepipe.apply_grants() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    g record;
    kind text;
    target text;
    rel regclass;
    part regclass;
    applied integer := 0;
BEGIN
    FOR g IN SELECT * FROM oncepipe.role_grants ORDER BY role, object LOOP
        kind := split_part(g.object, ' ', 1);
        target := substr(g.object, length(kind) + 2);
        IF kind = 'SCHEMA' THEN
            CONTINUE WHEN to_regnamespace(target) IS NULL;
        ELSIF kind = 'FUNCTION' THEN
            CONTINUE WHEN to_regprocedure(target) IS NULL;
        ELSE
            rel := to_regclass(target);
            CONTINUE WHEN rel IS NULL;
        END IF;
        EXECUTE format('GRANT %s ON %s %s TO %I', g.privileges, kind, target, g.role);
        applied := applied + 1;
        IF kind = 'TABLE' THEN
            FOR part IN
                SELECT t.relid FROM pg_catalog.pg_partition_tree(rel) AS t WHERE t.level > 0
            LOOP
                EXECUTE format('GRANT %s ON TABLE %s TO %I', g.privileges, part, g.role);
            END LOOP;
        END IF;
    END LOOP;
    RETURN applied;
END;
$$;
REVOKE EXECUTE ON FUNCTION oncepipe.apply_grants() FROM PUBLIC;
ALTER FUNCTION oncepipe.apply_grants() OWNER TO oncepipe_owner;
ALTER TABLE oncepipe.role_grants OWNER TO oncepipe_owner;

-- A new day's partition gets the inbox's grants as it is created (by `oncepipe maintain`,
-- as the owner). No DDL runs in workers any more: inbox_claim names the command to run.
CREATE OR REPLACE FUNCTION oncepipe.inbox_create_partition(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'inbox_p' || to_char(p_day, 'YYYYMMDD');
    lower timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    upper timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    g record;
BEGIN
    IF to_regclass('oncepipe.' || name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE oncepipe.%I (LIKE oncepipe.inbox INCLUDING DEFAULTS)', name);
    EXECUTE format('CREATE UNIQUE INDEX %I ON oncepipe.%I (consumer_group, event_id)',
                   name || '_dedupe', name);
    FOR g IN SELECT * FROM oncepipe.role_grants WHERE object = 'TABLE oncepipe.inbox' LOOP
        EXECUTE format('GRANT %s ON TABLE oncepipe.%I TO %I', g.privileges, name, g.role);
    END LOOP;
    EXECUTE format('ALTER TABLE oncepipe.inbox ATTACH PARTITION oncepipe.%I'
                   ' FOR VALUES FROM (%L) TO (%L)', name, lower, upper);
    RETURN true;
END;
$$;

-- The batch's inbox insert, as in 0007, but a missing partition is the same error as a row
-- no partition takes (check_violation): consumers wait and retry until `oncepipe maintain`
-- has run, instead of failing the batch.
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

-- Each login role's session limits, for this database: a stuck statement or an abandoned
-- transaction ends instead of holding locks (the workers also set their own idle limit at
-- connect). The migrator has none: DETACH ... CONCURRENTLY waits for other transactions.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('oncepipe_relay', '30s', '60s'),
        ('oncepipe_producer', '10s', '30s'),
        ('oncepipe_consumer', '60s', '60s'),
        ('oncepipe_dlq', '60s', '60s'),
        ('oncepipe_ingest', '10s', '30s')
    ) AS v(name, statement, idle) LOOP
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L',
                       r.name, current_database(), r.statement);
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET idle_in_transaction_session_timeout = %L',
                       r.name, current_database(), r.idle);
    END LOOP;
END;
$$;

-- The demo's click handler writes these business tables (an operator grants its own).
GRANT SELECT, INSERT, UPDATE ON public.click_events, public.item_click_counts,
    public.user_item_click_counts TO oncepipe_consumer;

SET LOCAL ROLE oncepipe_owner;
SELECT oncepipe.apply_grants();
