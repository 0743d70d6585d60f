-- depends: 0004_outbox
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Outbox rows carry Kafka headers as bytes and may have a null value, so a dead letter is the
-- record as it was: a header value with a NUL byte or invalid UTF-8, a null header value and a
-- tombstone's null value all survive (jsonb cannot hold \u0000 and has no bytes).
-- Headers are two parallel arrays (a name may repeat, order matters); psycopg dumps
-- list[bytes | None] as bytea[] with NUL bytes and NULL elements intact.
ALTER TABLE oncepipe.outbox
    ADD COLUMN header_names  bytea[] NOT NULL DEFAULT '{}',
    ADD COLUMN header_values bytea[] NOT NULL DEFAULT '{}',
    ALTER COLUMN value DROP NOT NULL;

UPDATE oncepipe.outbox SET
    header_names = ARRAY(
        SELECT convert_to(h.pair ->> 0, 'UTF8')
        FROM jsonb_array_elements(oncepipe.outbox.headers) WITH ORDINALITY AS h (pair, n)
        ORDER BY h.n
    ),
    header_values = ARRAY(
        SELECT convert_to(h.pair ->> 1, 'UTF8')
        FROM jsonb_array_elements(oncepipe.outbox.headers) WITH ORDINALITY AS h (pair, n)
        ORDER BY h.n
    )
WHERE oncepipe.outbox.headers <> '[]'::jsonb;

ALTER TABLE oncepipe.outbox
    ADD CONSTRAINT outbox_headers_paired
        CHECK (cardinality(header_names) = cardinality(header_values));

-- Headers as bytes: names and values are parallel arrays, a NULL value is a null header value,
-- a NULL p_value a tombstone. Returns the new row's id, or NULL when (topic, dedupe_id) exists.
CREATE FUNCTION oncepipe.enqueue(
    p_topic text, p_dedupe_id text, p_key bytea, p_value bytea,
    p_header_names bytea[], p_header_values bytea[]
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
BEGIN
    INSERT INTO oncepipe.outbox (topic, dedupe_id, key, value, header_names, header_values)
    VALUES (p_topic, p_dedupe_id, p_key, p_value,
            coalesce(p_header_names, '{}'), coalesce(p_header_values, '{}'))
    ON CONFLICT (topic, dedupe_id) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NOT NULL THEN
        PERFORM pg_notify('oncepipe_outbox', p_topic);
    END IF;
    RETURN new_id;
END;
$$;

-- The original signature keeps working for existing callers: [[name, value], ...] as jsonb,
-- values as text (UTF-8), a JSON null a null header value.
CREATE OR REPLACE FUNCTION oncepipe.enqueue(
    p_topic text, p_dedupe_id text, p_key bytea, p_value bytea, p_headers jsonb DEFAULT '[]'
) RETURNS bigint
LANGUAGE sql AS $$
    SELECT oncepipe.enqueue(
        p_topic, p_dedupe_id, p_key, p_value,
        ARRAY(
            SELECT convert_to(h.pair ->> 0, 'UTF8')
            FROM jsonb_array_elements(coalesce(p_headers, '[]')) WITH ORDINALITY AS h (pair, n)
            ORDER BY h.n
        ),
        ARRAY(
            SELECT convert_to(h.pair ->> 1, 'UTF8')
            FROM jsonb_array_elements(coalesce(p_headers, '[]')) WITH ORDINALITY AS h (pair, n)
            ORDER BY h.n
        )
    )
$$;

ALTER TABLE oncepipe.outbox DROP COLUMN headers;
