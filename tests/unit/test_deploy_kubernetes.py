"""The Kubernetes example: valid in strict mode (kubernetes-validate, bundled schemas), and what
an operator relies on: probes on the health endpoints, grace above the longest batch, no more
consumers than partitions, a PodDisruptionBudget per Deployment, secrets as files."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from cli.main import app
from tests.unit.test_deploy_runbooks import parse_command

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "deploy" / "kubernetes"
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
# Consumer: batch timeout 1 s + the consumer role's statement_timeout 60 s (migration 0014);
# relay: pass timeout 10 s + the relay role's statement_timeout 30 s.
LONGEST_BATCH_S = {"consume": 61, "relay": 40}


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate in strict mode: unknown fields fail too."""
    return subprocess.run(
        [str(VALIDATE), "--strict", "--quiet", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


@functools.cache
def resources() -> list[dict[str, Any]]:
    """Every resource of the example (read once: the tests only look)."""
    found = []
    for path in sorted(FOLDER.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> list[dict[str, Any]]:
    """The example's resources of one kind."""
    return [r for r in resources() if r["kind"] == kind]


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a Deployment, Job or CronJob."""
    spec = resource["spec"]
    if resource["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def declared_partitions() -> dict[str, int]:
    """Topic -> partitions, from the `oncepipe topics create` the setup Job runs."""
    declared = {}
    for job in of_kind("Job"):
        for container in pod_spec(job)["containers"]:
            args = container.get("args", [])
            if args[:2] == ["topics", "create"]:
                declared[args[args.index("--topic") + 1]] = int(
                    args[args.index("--partitions") + 1]
                )
    return declared


def test_the_example_passes_strict_validation() -> None:
    result = validate(*sorted(FOLDER.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misspelled_field(tmp_path: Path) -> None:
    broken = tmp_path / "consume.yaml"
    text = (FOLDER / "consume-clicks.yaml").read_text()
    broken.write_text(text.replace("terminationGracePeriodSeconds:", "terminationGracePeriod:"))
    result = validate(broken)
    assert result.returncode != 0
    assert "terminationGracePeriod" in result.stdout + result.stderr


def test_strict_validation_catches_a_wrong_type(tmp_path: Path) -> None:
    broken = tmp_path / "relay.yaml"
    text = (FOLDER / "relay.yaml").read_text()
    broken.write_text(text.replace("replicas: 2", "replicas: two"))
    assert validate(broken).returncode != 0


def test_consumer_replicas_are_no_more_than_the_declared_partitions() -> None:
    partitions = declared_partitions()
    assert partitions, "the setup Job declares no topic"
    consumers = [
        d for d in of_kind("Deployment") if "consume" in pod_spec(d)["containers"][0]["args"]
    ]
    assert consumers
    for deployment in consumers:
        args = pod_spec(deployment)["containers"][0]["args"]
        topics = [args[i + 1] for i, a in enumerate(args) if a == "--topic"]
        bound = min(partitions[t] for t in topics)
        assert deployment["spec"]["replicas"] <= bound, deployment["metadata"]["name"]


@pytest.mark.parametrize("name", ["oncepipe-consume-clicks", "oncepipe-relay"])
def test_workers_are_probed_and_given_a_grace_above_the_longest_batch(name: str) -> None:
    (deployment,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == name]
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    command = container["args"][0]
    assert spec["terminationGracePeriodSeconds"] > LONGEST_BATCH_S[command]
    (config,) = of_kind("ConfigMap")
    port = int(config["data"]["ONCEPIPE_METRICS_PORT"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert named[get["port"]] == port
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_every_deployment_has_a_disruption_budget() -> None:
    budgets = [b["spec"]["selector"]["matchLabels"] for b in of_kind("PodDisruptionBudget")]
    for deployment in of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(b.items() <= labels.items() for b in budgets), deployment["metadata"]["name"]


def test_maintenance_runs_as_a_cron_job() -> None:
    (cron,) = of_kind("CronJob")
    assert pod_spec(cron)["containers"][0]["args"] == ["maintain"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


def test_every_container_command_parses_and_secrets_come_as_files() -> None:
    (config,) = of_kind("ConfigMap")
    secrets_dir = config["data"]["ONCEPIPE_KAFKA_SECRETS_DIR"]
    passfile = config["data"]["PGPASSFILE"]
    for resource in [*of_kind("Deployment"), *of_kind("Job"), *of_kind("CronJob")]:
        spec = pod_spec(resource)
        for container in spec["containers"] + spec.get("initContainers", []):
            if "args" in container:
                parse_command(app, container["args"])
            for env in container.get("env", []):
                assert "valueFrom" not in env, "secrets come as files, not variables"
                assert "password" not in env.get("value", "")
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert secrets_dir in mounts
            if container["name"] != "topics":
                assert str(Path(passfile).parent) in mounts
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "oncepipe"
