"""The Kafka release of the native services and the in-place upgrade of an older state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from infra.kafka.jars import jars_dir
from infra.kafka.node import KafkaNode
from infra.kafka.versions import (
    LEGACY_VERSION,
    VERSION_FILE,
    feature_levels,
    needs_upgrade,
    recorded_version,
    refuse_downgrade,
)
from infra.paths import DEFAULT_KAFKA_VERSION, layout
from infra.process import ServiceError

# `kafka-features version-mapping --release-version 4.4` on Kafka 4.4.0.
MAPPING_4_4 = """metadata.version=33 (4.4-IV2)
kraft.version=1
transaction.version=2
group.version=1
eligible.leader.replicas.version=1
share.version=2
streams.version=1
"""


def test_the_default_release_is_4_4_and_4_1_stays_selectable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ONCEPIPE_INFRA_KAFKA_VERSION", raising=False)
    assert layout().kafka_version == DEFAULT_KAFKA_VERSION == "4.4.0"
    monkeypatch.setenv("ONCEPIPE_INFRA_KAFKA_VERSION", "4.1.1")
    assert layout().kafka_version == "4.1.1"


def test_a_malformed_release_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ONCEPIPE_INFRA_KAFKA_VERSION", "latest")
    with pytest.raises(SystemExit, match="ONCEPIPE_INFRA_KAFKA_VERSION"):
        layout()


def test_each_release_has_its_own_jar_folder(tmp_path: Path) -> None:
    assert jars_dir(tmp_path, "4.4.0") != jars_dir(tmp_path, "4.1.1")
    assert jars_dir(tmp_path, "4.4.0").name.startswith("4.4.0-")


def test_a_state_formatted_before_versions_were_recorded_counts_as_4_1(tmp_path: Path) -> None:
    assert recorded_version(tmp_path) == LEGACY_VERSION == "4.1.1"
    assert needs_upgrade(tmp_path, "4.4.0")
    (tmp_path / VERSION_FILE).write_text("4.4.0\n")
    assert not needs_upgrade(tmp_path, "4.4.0")
    assert not needs_upgrade(tmp_path, "4.4.1")  # a patch release keeps the feature levels


def test_a_state_formatted_by_a_newer_release_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / VERSION_FILE).write_text("4.4.0\n")
    refuse_downgrade(tmp_path, "4.4.0")
    with pytest.raises(ServiceError) as caught:
        refuse_downgrade(tmp_path, "4.1.1")
    assert "ONCEPIPE_INFRA_KAFKA_VERSION=4.4.0" in str(caught.value)
    assert "python -m infra clean kafka" in str(caught.value)


def test_the_upgrade_raises_every_feature_but_the_quorum_format() -> None:
    assert feature_levels(MAPPING_4_4) == [
        "metadata.version=33",
        "transaction.version=2",
        "group.version=1",
        "eligible.leader.replicas.version=1",
        "share.version=2",
        "streams.version=1",
    ]
    with pytest.raises(ServiceError, match=r"metadata\.version"):
        feature_levels("usage: kafka-features ...")


def test_a_launch_refused_before_it_ran_is_not_a_bind_clash(tmp_path: Path) -> None:
    # The port check raises before the JVM starts: the retry's bind_failed() must not crash.
    (tmp_path / "kafka" / "logs").mkdir(parents=True)
    (tmp_path / "kafka" / "logs" / "server.log").write_text("an earlier run's lines\n")
    node = KafkaNode(replace(layout(), state_dir=tmp_path), tmp_path / "kafka", 1, 1)
    assert not node.bind_failed()
