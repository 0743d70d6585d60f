"""The dead-letter tool behind ``oncepipe dlq``: read, group, show and replay dead letters.

- Reading: ``DeadLetterReader`` scans dead-letter topics (``is_dlq_topic``, ``DLQ_SUFFIXES``)
  up to the end they had when it started, filtered by a ``Selection``, into a ``Scan``;
  ``fetch`` finds one by reference (``DeadLetterNotFoundError``). ``lenient_codec`` decodes
  what it can.
- The letter: ``DeadLetter``, whatever wrote it (oncepipe, Spring, Connect or Streams:
  ``Dialect``, ``DIALECTS``), from ``parse_dead_letter`` or, when the client cannot read the
  headers, ``unreadable_dead_letter``; ``DeadLetterFormatError`` when it is not one.
  ``format_ref``/``parse_ref`` name it ``<dlq-topic>:<partition>:<offset>``.
- Grouping: ``fingerprint_of``/``group_failures`` (``FailureGroup``) put letters that failed
  the same way together (``fingerprint``, ``mask``).
- Showing: ``decode_payload`` (``DecodedPayload``), ``hex_dump``, ``escape``.
- Personal data: ``purge_dead_letters``, ``erase_key`` (by key, across the outbox, dead
  letters, parked events, retries and inbox rows), ``apply_retention``, each recorded in the
  erasure ledger (``PurgeReport``, ``key_digest``).
- Replaying: ``Replayer`` sends letters back at most once each (a ledger in PostgreSQL),
  with ``replay_headers`` (``REPLAY_OF``, ``REPLAY_COUNT``, ``MAX_REPLAY_COUNT``), reporting a
  ``ReplayOutcome`` each.

The headers oncepipe writes on a dead letter are defined in ``consumers.deadletter_headers``,
next to the consumer core that writes them.
"""

from __future__ import annotations

from consumers.dlq.fingerprint import (
    FailureGroup,
    fingerprint,
    fingerprint_of,
    group_failures,
    mask,
)
from consumers.dlq.headers import (
    DIALECTS,
    MAX_REPLAY_COUNT,
    REPLAY_COUNT,
    REPLAY_OF,
    DeadLetter,
    DeadLetterFormatError,
    Dialect,
    format_ref,
    is_dead_letter_header,
    parse_dead_letter,
    parse_ref,
    replay_headers,
    unreadable_dead_letter,
)
from consumers.dlq.ledger import LedgerEntry
from consumers.dlq.ledger import entries as ledger_entries
from consumers.dlq.parked import Discard, discard_blockers, parked_counts
from consumers.dlq.payload import DecodedPayload, decode_payload, escape, hex_dump
from consumers.dlq.purge import (
    PurgeReport,
    apply_retention,
    erase_key,
    key_digest,
    purge_dead_letters,
)
from consumers.dlq.reader import (
    DLQ_SUFFIXES,
    DeadLetterNotFoundError,
    DeadLetterReader,
    Scan,
    Selection,
    is_dlq_topic,
    lenient_codec,
)
from consumers.dlq.replay import Replayer, ReplayOutcome

__all__ = [
    "DIALECTS",
    "DLQ_SUFFIXES",
    "MAX_REPLAY_COUNT",
    "REPLAY_COUNT",
    "REPLAY_OF",
    "DeadLetter",
    "DeadLetterFormatError",
    "DeadLetterNotFoundError",
    "DeadLetterReader",
    "DecodedPayload",
    "Dialect",
    "Discard",
    "FailureGroup",
    "LedgerEntry",
    "PurgeReport",
    "ReplayOutcome",
    "Replayer",
    "Scan",
    "Selection",
    "apply_retention",
    "decode_payload",
    "discard_blockers",
    "erase_key",
    "escape",
    "fingerprint",
    "fingerprint_of",
    "format_ref",
    "group_failures",
    "hex_dump",
    "is_dead_letter_header",
    "is_dlq_topic",
    "key_digest",
    "ledger_entries",
    "lenient_codec",
    "mask",
    "parked_counts",
    "parse_dead_letter",
    "parse_ref",
    "purge_dead_letters",
    "replay_headers",
    "unreadable_dead_letter",
]
