-- The transactional outbox: upstream code writes its business row and the event in one
-- transaction; the relay publishes unpublished rows and marks them after the broker's ack.
CREATE TABLE oncepipe.outbox (
    id            bigserial PRIMARY KEY,
    topic         text        NOT NULL,
    -- event_id for events, source coordinates for dead letters: one row per (topic, dedupe_id)
    -- so an upstream retry with the same idempotency key adds nothing.
    dedupe_id     text        NOT NULL,
    key           bytea,
    value         bytea       NOT NULL,
    -- [[name, value], ...]: Kafka headers may repeat a name, so a list of pairs, not an object.
    headers       jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    failed_at     timestamptz,
    CONSTRAINT outbox_topic_dedupe_id_key UNIQUE (topic, dedupe_id)
);

-- The relay's query: unpublished, not failed rows in id order.
CREATE INDEX outbox_pending_idx ON oncepipe.outbox (id)
    WHERE published_at IS NULL AND failed_at IS NULL;
-- Retention cleanup of published rows.
CREATE INDEX outbox_published_at_idx ON oncepipe.outbox (published_at)
    WHERE published_at IS NOT NULL;

-- Enqueue from any language: returns the new row's id, or NULL when (topic, dedupe_id) exists.
-- The NOTIFY is delivered at COMMIT, so the relay wakes only for committed rows.
CREATE FUNCTION oncepipe.enqueue(
    p_topic text, p_dedupe_id text, p_key bytea, p_value bytea, p_headers jsonb DEFAULT '[]'
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO oncepipe.outbox (topic, dedupe_id, key, value, headers)
    VALUES (p_topic, p_dedupe_id, p_key, p_value, coalesce(p_headers, '[]'::jsonb))
    ON CONFLICT (topic, dedupe_id) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NOT NULL THEN
        PERFORM pg_notify('oncepipe_outbox', p_topic);
    END IF;
    RETURN new_id;
END;
$$;
