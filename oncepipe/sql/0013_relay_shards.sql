-- depends: 0009_outbox_partition_hold
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Several relays publish the outbox at once, each the shards it leases. A row's shard is a hash
-- of its Kafka key (a keyless row: of its id), so one key's rows are in one shard and a shard's
-- owner publishes them in id order, as the single relay did. 16 shards: at most 16 relays work.
ALTER TABLE oncepipe.outbox
    ADD COLUMN shard smallint NOT NULL
        GENERATED ALWAYS AS (get_byte(sha256(coalesce(key, int8send(id))), 0) % 16) STORED;

-- The relay's query, per owned shard: its unpublished, not failed rows in id order.
CREATE INDEX outbox_shard_pending_idx ON oncepipe.outbox (shard, id)
    WHERE published_at IS NULL AND failed_at IS NULL;

-- One lease per shard. A relay renews its leases every pass; a lease not renewed within its
-- term (a dead or stalled relay) may be claimed by another relay, which bumps epoch.
CREATE TABLE oncepipe.relay_shards (
    shard       smallint    PRIMARY KEY,
    owner       text,
    epoch       bigint      NOT NULL DEFAULT 0,
    lease_until timestamptz,
    claimed_at  timestamptz
);
INSERT INTO oncepipe.relay_shards (shard) SELECT generate_series(0, 15);

-- Live relays (a heartbeat within the lease term): each takes at most its fair share of shards.
CREATE TABLE oncepipe.relay_members (
    relay_id     text        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Every change of a shard's owner, written by the database itself (not by the relay's code), so
-- a check can prove that a claim took a free or expired lease: never two live owners at once.
CREATE TABLE oncepipe.relay_shard_claims (
    id                  bigserial   PRIMARY KEY,
    shard               smallint    NOT NULL,
    epoch               bigint      NOT NULL,
    owner               text,
    at                  timestamptz NOT NULL DEFAULT now(),
    previous_owner      text,
    previous_lease_until timestamptz
);

-- SECURITY DEFINER: the log is written with its owner's rights, so a relay's role needs (and
-- has) no INSERT on it and cannot forge a claim.
CREATE FUNCTION oncepipe.relay_shard_claimed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO oncepipe.relay_shard_claims
        (shard, epoch, owner, previous_owner, previous_lease_until)
    VALUES (NEW.shard, NEW.epoch, NEW.owner, OLD.owner, OLD.lease_until);
    RETURN NEW;
END;
$$;

CREATE TRIGGER relay_shard_claimed AFTER UPDATE OF owner ON oncepipe.relay_shards
    FOR EACH ROW WHEN (NEW.owner IS DISTINCT FROM OLD.owner)
    EXECUTE FUNCTION oncepipe.relay_shard_claimed();
