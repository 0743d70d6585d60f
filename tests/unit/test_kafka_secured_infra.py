"""The secured local broker's pieces that need no broker: key material, argv, modes, ACL set."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from infra.kafka.broker import Kafka
from infra.kafka.security import BrokerSecurity, scram_salted
from infra.paths import layout
from infra.process import ServiceError
from oncepipe.kafka import AclRule, pipeline_acls


def secured_layout(tmp_path: Path, mode: str = "scram-tls") -> Any:
    return replace(layout(), state_dir=tmp_path, kafka_brokers=1, kafka_security=mode)


def test_key_material_is_private_and_the_certificate_names_loopback(tmp_path: Path) -> None:
    security = BrokerSecurity(tmp_path / "security")
    security.ensure()
    for path in (security.ca_key_file, security.keystore_file, security.password_file("relay")):
        assert path.stat().st_mode & 0o777 == 0o600, path
    chain = x509.load_pem_x509_certificates(security.keystore_file.read_bytes())
    ca = x509.load_pem_x509_certificate(security.ca_file.read_bytes())
    chain[0].verify_directly_issued_by(ca)
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    before = security.password("relay")
    security.ensure()  # a second start keeps what the first made
    assert security.password("relay") == before


def test_scram_credentials_reach_the_format_tool_through_a_private_file_not_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = Kafka(secured_layout(tmp_path))
    assert kafka.security is not None
    kafka.security.ensure()
    node = kafka.nodes[0]
    node.write_config("1@127.0.0.1:1")
    seen: dict[str, Any] = {}

    def fake_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        (argfile,) = [Path(a[1:]) for a in argv if a.startswith("@")]
        seen.update(argv=argv, mode=argfile.stat().st_mode & 0o777, text=argfile.read_text())
        seen["argfile"] = argfile
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    node.format_storage("cluster-id", kafka.security.scram_arguments())
    secrets = [kafka.security.password(name) for name in kafka.security.principals]
    assert not any(secret in " ".join(seen["argv"]) for secret in secrets)
    assert "saltedpassword" not in " ".join(seen["argv"])
    assert seen["mode"] == 0o600
    assert not seen["argfile"].exists()
    # The file holds the salted form only: the salted password of each principal, no password.
    assert not any(secret in seen["text"] for secret in secrets)
    assert seen["text"].count("SCRAM-SHA-512=[name=") == len(secrets)
    assert "server.properties" in seen["text"]


def test_the_salted_password_is_rfc5802_hi_with_sha512() -> None:
    # RFC 5802 Hi() is PBKDF2 with the HMAC as PRF; one iteration is HMAC(password, salt || 1).
    salt = base64.b64decode("c2FsdA==")
    expected = hmac.new(b"pencil", salt + b"\0\0\0\1", hashlib.sha512).digest()
    assert scram_salted("pencil", salt, iterations=1) == expected


def test_a_state_formatted_for_the_other_mode_is_refused_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Kafka, "install", lambda self: tmp_path)
    kafka = Kafka(secured_layout(tmp_path))
    kafka.nodes[0].data_dir.mkdir(parents=True)
    (kafka.nodes[0].data_dir / "meta.properties").write_text("node.id=1\n")
    kafka.mode_file.write_text("plaintext\n")
    with pytest.raises(ServiceError) as refused:
        kafka.start()
    message = str(refused.value)
    assert "formatted for plaintext, not scram-tls" in message
    assert "ONCEPIPE_INFRA_KAFKA_SECURITY=plaintext" in message
    assert "\n" not in message


def test_each_mode_keeps_its_own_state_folder(tmp_path: Path) -> None:
    plain = Kafka(secured_layout(tmp_path, "plaintext"))
    secured = Kafka(secured_layout(tmp_path))
    assert plain.home == tmp_path / "kafka"
    assert secured.home == tmp_path / "kafka-scram-tls"
    assert [sibling.home for sibling in secured.siblings()] == [plain.home]


def test_a_secured_node_has_no_plaintext_client_listener(tmp_path: Path) -> None:
    kafka = Kafka(secured_layout(tmp_path))
    assert kafka.security is not None
    kafka.security.ensure()
    kafka.nodes[0].write_config("1@127.0.0.1:1")
    config = dict(
        line.split("=", 1) for line in kafka.nodes[0].config_file.read_text().splitlines()
    )
    assert config["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert config["super.users"] == "User:broker;User:ANONYMOUS"
    assert config["allow.everyone.if.no.acl.found"] == "false"
    assert kafka.nodes[0].config_file.stat().st_mode & 0o777 == 0o600


def rules_of(rules: list[AclRule], principal: str) -> set[tuple[str, str, str, bool]]:
    return {
        (r.resource, r.name, r.operation, r.prefixed) for r in rules if r.principal == principal
    }


def test_the_acl_set_gives_each_component_only_what_it_needs() -> None:
    rules = pipeline_acls(["clicks"], "shop-")
    assert rules_of(rules, "consumer") == {
        ("topic", "clicks", "READ", False),
        ("group", "shop-", "READ", True),
        ("group", "shop-", "DESCRIBE", True),
    }
    assert rules_of(rules, "relay") == {
        ("topic", "clicks", "WRITE", False),
        ("topic", "clicks.dlq", "WRITE", False),
    }
    assert rules_of(rules, "producer") == {("topic", "clicks", "WRITE", False)}
    replay = rules_of(rules, "replay")
    assert {r for r in replay if r[0] == "topic"} == {
        ("topic", "clicks.dlq", "READ", False),
        ("topic", "clicks", "WRITE", False),
    }
    assert {r[0] for r in rules_of(rules, "admin")} == {"topic"}
    assert all(not r.prefixed for r in rules if r.resource == "topic")


def test_three_secured_nodes_share_one_ca_and_talk_to_each_other_over_sasl_ssl(
    tmp_path: Path,
) -> None:
    kafka = Kafka(replace(secured_layout(tmp_path), kafka_brokers=3))
    assert kafka.home == tmp_path / "kafka-3-scram-tls"
    assert kafka.security is not None
    kafka.security.ensure()
    assert {node.security for node in kafka.nodes} == {kafka.security}
    for node in kafka.nodes:
        node.write_config("1@127.0.0.1:1,2@127.0.0.1:3,3@127.0.0.1:5")
        lines = node.config_file.read_text().splitlines()
        config = dict(line.split("=", 1) for line in lines)
        assert config["inter.broker.listener.name"] == "SASL_SSL"
        assert config["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
        assert config["listeners"].startswith(f"SASL_SSL://127.0.0.1:{node.port},CONTROLLER://")
        assert (
            'username="broker"' in config["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
        )
