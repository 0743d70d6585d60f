-- Every name in a migration is schema-qualified (see oncepipe/migrations.py).
-- oncepipe keeps its own tables (outbox, inbox, offsets, schema store) in one schema so they
-- never collide with the business tables of the application.
CREATE SCHEMA IF NOT EXISTS oncepipe;
