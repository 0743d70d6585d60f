"""The PostgreSQL service (Debian's server binaries, a cluster in the state folder)."""
