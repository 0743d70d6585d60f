"""Dead letters: the header contract, reading DLQ topics, failure fingerprints, replay."""
