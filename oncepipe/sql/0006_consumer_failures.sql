-- depends: 0003_consumer
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Non-transient failures of records a consumer group could not apply yet, counted across
-- crashes and restarts: a record is dead-lettered once it failed max_attempts times (or, for an
-- unknown writer schema, once it has been failing longer than the grace period). Written in
-- short transactions of their own, so a batch that rolls back still counts its attempt; rows
-- are deleted by the batch that moves the offset past them. SQL in consumers/failures.py only.
CREATE TABLE oncepipe.consumer_failures (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    event_id       uuid,
    stage          text        NOT NULL CHECK (stage IN ('decode', 'validate', 'handle')),
    error_class    text        NOT NULL,
    attempts       integer     NOT NULL CHECK (attempts >= 1),
    first_failure  timestamptz NOT NULL DEFAULT now(),
    last_failure   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition, "offset")
);
