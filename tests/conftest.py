"""Fixtures live as plugins under tests/fixtures/; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.database",
    "tests.fixtures.kafka",
    "tests.fixtures.cluster",
    "tests.fixtures.logs",
    "tests.fixtures.workers",
    "tests.fixtures.relay",
    "tests.fixtures.chaos",
    "tests.fixtures.poison",
    "tests.fixtures.user_types",
    "tests.fixtures.secured",
    "tests.fixtures.ingest",
    "tests.fixtures.secured_postgres",
    "tests.fixtures.observe",
    "tests.fixtures.pgbouncer",
]
