"""The fault proxy's reading of the PostgreSQL protocol: which COMMIT replies it can lose."""

from __future__ import annotations

import struct

from tests.faults.pgwire import Conversation


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


_PARAMETERS = b"user\x00oncepipe\x00\x00"
START_UP = struct.pack("!ii", 8 + len(_PARAMETERS), 196608) + _PARAMETERS
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
READY = _message(b"Z", b"I")
COMMITTED = _message(b"C", _cstr("COMMIT"))
ROLLED_BACK = _message(b"C", _cstr("ROLLBACK"))


def _parse(name: str, sql: str) -> bytes:
    return _message(b"P", _cstr(name) + _cstr(sql) + b"\x00\x00")


def _bind(statement: str) -> bytes:
    return _message(b"B", _cstr("") + _cstr(statement) + b"\x00\x00" * 3)


EXECUTE = _message(b"E", _cstr("") + b"\x00\x00\x00\x00")
SYNC = _message(b"S", b"")


def _started() -> Conversation:
    """A conversation past the SSL refusal, the start-up and its ReadyForQuery."""
    conversation = Conversation()
    conversation.from_client(SSL_REQUEST, lambda _: None)
    assert conversation.from_server(b"N").relay == b"N"
    conversation.from_client(START_UP, lambda _: None)
    auth_ok = _message(b"R", b"\x00\x00\x00\x00")
    assert conversation.from_server(auth_ok + READY).relay == auth_ok + READY
    return conversation


def test_a_simple_query_commit_reply_is_withheld_and_the_replies_before_it_relayed() -> None:
    conversation = _started()
    conversation.from_client(_message(b"Q", _cstr("BEGIN")), lambda _: None)
    begun = _message(b"C", _cstr("BEGIN")) + READY
    assert conversation.from_server(begun).relay == begun
    conversation.from_client(_message(b"Q", _cstr("commit;")), lambda _: "loss")
    replies = conversation.from_server(COMMITTED + READY)
    assert replies.lost
    assert replies.relay == b""


def test_a_pipelined_commit_split_across_reads_is_found_by_its_prepared_name() -> None:
    conversation = _started()
    # Prepared once, then only bound by name: the SQL is not in the later pipelines.
    conversation.from_client(_parse("_pg3_0", "COMMIT"), lambda _: None)
    pipeline = (
        _parse("", "SELECT oncepipe.consumer_offsets_move($1)") + _bind("") + EXECUTE
        + _bind("_pg3_0") + EXECUTE + SYNC
    )  # fmt: skip
    seen: list[list[str]] = []

    def lose(transaction: list[str]) -> object:
        seen.append(list(transaction))
        return "loss"

    for at in range(0, len(pipeline), 7):  # any split of the stream
        conversation.from_client(pipeline[at : at + 7], lose)
    assert seen == [["SELECT oncepipe.consumer_offsets_move($1)"]]
    selected = _message(b"1", b"") + _message(b"2", b"") + _message(b"C", _cstr("SELECT 1"))
    replies = conversation.from_server(selected + COMMITTED[:3])
    assert not replies.lost
    assert replies.relay == selected
    replies = conversation.from_server(COMMITTED[3:] + READY)
    assert replies.lost
    assert replies.relay == b""


def test_a_commit_that_rolled_back_or_never_ran_is_relayed_and_its_loss_given_back() -> None:
    conversation = _started()
    conversation.from_client(_message(b"Q", _cstr("COMMIT")), lambda _: "first")
    replies = conversation.from_server(ROLLED_BACK + READY)
    assert (replies.lost, replies.relay, replies.unspent) == (False, ROLLED_BACK + READY, ["first"])
    # A pipeline whose statement before the COMMIT failed: the server skips to the Sync.
    conversation.from_client(_parse("", "COMMIT") + _bind("") + EXECUTE + SYNC, lambda _: "2nd")
    failed = _message(b"E", b"SERROR\x00\x00") + READY
    replies = conversation.from_server(failed)
    assert (replies.lost, replies.relay, replies.unspent) == (False, failed, ["2nd"])


def test_the_reply_to_an_earlier_sync_is_not_taken_for_the_commits() -> None:
    conversation = _started()
    conversation.from_client(_message(b"Q", _cstr("SELECT 1")), lambda _: None)
    conversation.from_client(_message(b"Q", _cstr("COMMIT")), lambda _: "loss")
    earlier = _message(b"C", _cstr("SELECT 1")) + READY
    replies = conversation.from_server(earlier + COMMITTED + READY)
    assert replies.lost
    assert replies.relay == earlier


def test_a_stream_that_is_not_postgresql_is_relayed_as_it_is() -> None:
    conversation = Conversation()
    kafka_request = struct.pack("!ihh", 12, 18, 3) + b"\x00" * 8
    conversation.from_client(kafka_request, lambda _: "loss")
    assert conversation.opaque
    kafka_response = b"\x00\x00\x00\x10anything"
    assert conversation.from_server(kafka_response).relay == kafka_response
