-- depends: 0006_consumer_failures
-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- Which worker of a consumer group took each partition last (a token it draws at start). A
-- worker that lost a partition without knowing it (a zombie: a stall past the session timeout)
-- finds another owner here and does not count its failures in oncepipe.consumer_failures, so
-- a record is not dead-lettered early for attempts that two workers made at once. The offsets
-- compare-and-set still fences its batches. SQL in consumers/failures.py only.
CREATE TABLE oncepipe.consumer_owners (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    owner          uuid        NOT NULL,
    since          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
