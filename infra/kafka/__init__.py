"""The Kafka broker service (Maven-fetched jars, KRaft combined mode)."""
