"""The console's parts that need no services: passwords, redaction, filters, redirects."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.app import _local
from console.auth import hash_password, load_users, verify
from console.index import Filter
from console.letter import REDACTED, shown
from console.settings import ConsoleSettings
from consumers.dlq import DecodedPayload, unreadable_dead_letter
from oncepipe.errors import ConfigError


def test_a_password_verifies_against_its_hash_only() -> None:
    stored = hash_password("open sesame")
    assert verify("open sesame", stored)
    assert not verify("open sesame!", stored)
    assert not verify("open sesame", "scrypt$garbage")


def test_a_password_file_with_a_bad_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"# ops\nops:{hash_password('x' * 8)}\nbob:plaintext\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_users(path)
    path.write_text("# nobody\n")
    with pytest.raises(ConfigError, match="names no user"):
        load_users(path)


def test_settings_refuse_a_console_without_authentication() -> None:
    with pytest.raises(ValueError, match="--password-file"):
        ConsoleSettings()
    assert ConsoleSettings(trusted_header="X-User", redact_fields=" Email, user_id ,").redacted == {
        "email",
        "user_id",
    }


def test_redacted_fields_are_hidden_in_the_event_headers_key_message_and_trace() -> None:
    letter = unreadable_dead_letter(
        "boom for jane@example.com",
        b"jane@example.com",
        b"\x00\x01",
        dlq_topic="t.dlq",
        dlq_partition=0,
        dlq_offset=1,
        dlq_timestamp_ms=None,
    )
    payload = DecodedPayload(
        "Signup", {"email": "jane@example.com", "nested": {"Email": "j2@example.com"}, "n": 1}, None
    )
    view = shown(letter, payload, frozenset({"email"}))
    assert view.event == {"email": REDACTED, "nested": {"Email": REDACTED}, "n": 1}
    assert view.key == REDACTED
    assert "jane@example.com" not in view.error_message
    undecoded = shown(letter, DecodedPayload(None, None, "bad magic"), frozenset({"email"}))
    assert undecoded.value_dump is not None
    assert "not shown" in undecoded.value_dump


def test_filters_escape_like_wildcards_and_choose_the_topic_column() -> None:
    condition, params = Filter.of({"topic": "a.dlq", "error": "50%_off"}).where()
    assert "dlq_topic = %(topic)s" in condition
    assert params["error_like"] == "%50\\%\\_off%"
    assert "source_topic" in Filter(topic="a").where()[0]


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/letters?x=1", "/letters?x=1"), ("//evil.example", "/"), ("https://evil.example", "/"),
     ("/\\evil.example", "/")],
)  # fmt: skip
def test_login_redirects_only_to_this_site(target: str, expected: str) -> None:
    assert _local(target) == expected
