"""Destination topic names for `oncepipe dlq replay --to`: Kafka's rule, checked first."""

from __future__ import annotations

import pytest

from oncepipe.errors import ConfigError
from producers.topics import check_topic_name
from schemas import topic_name_problem


@pytest.mark.parametrize(
    "name", ["events.click", "events.click.dlq", "A-b_c.9", "x" * 249, "..x", "-"]
)
def test_names_kafka_accepts_pass(name: str) -> None:
    assert topic_name_problem(name) is None
    check_topic_name(name, "--to")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("bad topic!", "' !'"),
        ("", "not '', '.' or '..'"),
        (".", "not '', '.' or '..'"),
        ("..", "not '', '.' or '..'"),
        ("x" * 250, "250 characters"),
        ("événements", "'é'"),
        ("a:b", "':'"),
        ("line\n", "'\\n'"),
    ],
)
def test_names_kafka_refuses_are_refused_saying_why(name: str, why: str) -> None:
    problem = topic_name_problem(name)
    assert problem is not None
    assert why in problem
    with pytest.raises(ConfigError, match="is not a legal topic name") as refused:
        check_topic_name(name, "--to")
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("--to ")
