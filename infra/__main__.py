"""``python -m infra``: start, stop, kill and inspect the native Kafka and PostgreSQL.

python -m infra up [SERVICE...]        start (a no-op for what already runs)
python -m infra down [SERVICE...]      stop cleanly; leaves no process behind
python -m infra clean [SERVICE...]     stop, then delete the services' data and logs
python -m infra kill SERVICE [--node N]     SIGKILL (one Kafka node of a cluster with --node)
python -m infra restart SERVICE [--node N]
python -m infra status [--json]
python -m infra env                    export lines for ONCEPIPE_* variables (secured Kafka:
                                       one principal's, ONCEPIPE_INFRA_KAFKA_PRINCIPAL)
python -m infra logs SERVICE [-n N]
python -m infra acls --topic T... --group-prefix P [--print]
                                       the pipeline's ACL set on the secured broker
python -m infra tool COMMAND          install a Debian tool when missing (stress-ng, promtool)
python -m infra run -- CMD...          start what is not running, run CMD with the
                                       ONCEPIPE_* variables set, stop what it started
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable

from infra.apt import ensure_tool
from infra.kafka.broker import Kafka
from infra.kafka.node import KafkaNode
from infra.kafka.security import COMPONENT_PRINCIPALS
from infra.paths import layout
from infra.postgres.security import COMPONENT_ROLES
from infra.postgres.server import Postgres
from infra.process import ServiceError, tail
from infra.services import Service, all_services, service_env

# Tools the Makefile installs on demand (Debian package names).
TOOLS = {"stress-ng", "promtool", "chromedriver"}


def _pick(names: list[str]) -> list[Service]:
    services = all_services()
    unknown = [name for name in names if name not in services]
    if unknown:
        raise SystemExit(f"unknown service {unknown[0]!r}; choose from {', '.join(services)}")
    return [services[name] for name in names] if names else list(services.values())


def _up(services: list[Service]) -> list[Service]:
    started = []
    for service in services:
        begin = time.monotonic()
        if service.start():
            started.append(service)
            print(f"{service.name}: started in {time.monotonic() - begin:.1f}s", file=sys.stderr)
        else:
            print(f"{service.name}: already running", file=sys.stderr)
    return started


def _down(services: list[Service]) -> None:
    for service in reversed(services):
        stopped = service.stop()
        print(f"{service.name}: {'stopped' if stopped else 'not running'}", file=sys.stderr)


def _run(command: list[str]) -> int:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise SystemExit("run needs a command after --")
    started = _up(list(all_services().values()))
    try:
        env = {**os.environ, **service_env()}
        return subprocess.call(command, env=env)
    finally:
        _down(started)


def _one(args: argparse.Namespace) -> Service:
    (service,) = _pick([args.service])
    return service


def _cmd_install(_: argparse.Namespace) -> int:
    for service in _pick([]):
        service.install()
    return 0


def _cmd_tool(args: argparse.Namespace) -> int:
    print(ensure_tool(args.name))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    _up(_pick(args.services))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    _down(_pick(args.services))
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    services = _pick(args.services)
    _down(services)
    for service in services:
        service.remove_state()
    return 0


def _kafka_node(args: argparse.Namespace) -> KafkaNode | None:
    if args.node is None:
        return None
    service = _one(args)
    if not isinstance(service, Kafka):
        raise SystemExit("--node applies to kafka only")
    return service.node(args.node)


def _cmd_kill(args: argparse.Namespace) -> int:
    target: Service | KafkaNode = _kafka_node(args) or _one(args)
    print(f"{args.service}: {'killed' if target.kill() else 'not running'}", file=sys.stderr)
    return 0


def _cmd_restart(args: argparse.Namespace) -> int:
    service = _one(args)
    node = _kafka_node(args)
    if node is not None and isinstance(service, Kafka):
        node.stop()
        service.start(node_id=node.node_id)
    else:
        service.restart()
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    rows = {s.name: {"running": s.running(), "pid": s.pid()} for s in _pick([])}
    if args.json:
        print(json.dumps(rows))
        return 0
    for name, row in rows.items():
        state = f"running (pid {row['pid']})" if row["running"] else "stopped"
        print(f"{name}: {state}")
    return 0


def _cmd_env(_: argparse.Namespace) -> int:
    for key, value in service_env().items():
        print(f"export {key}={shlex.quote(value)}")
    kafka = all_services()["kafka"]
    if isinstance(kafka, Kafka) and kafka.secured:
        # Secrets stay in their files: only *_FILE paths are printed, one principal at a time.
        print(f"# kafka principal: {kafka.principal()}; each component has its own, pick one "
              "with `make env PRINCIPAL=<name>` (ONCEPIPE_INFRA_KAFKA_PRINCIPAL):")  # fmt: skip
        for name, what in COMPONENT_PRINCIPALS.items():
            print(f"#   {name}: {what}")
    postgres = all_services()["postgres"]
    if isinstance(postgres, Postgres) and postgres.secured:
        print(f"# postgres role of {postgres.component()}; password in PGPASSFILE; others with "
              f"`make env PG_SECURITY=scram-tls PRINCIPAL=<name>`: admin (superuser), "
              f"{', '.join(COMPONENT_ROLES)}")  # fmt: skip
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    print(tail(_one(args).log_path, args.n))
    return 0


def _cmd_acls(args: argparse.Namespace) -> int:
    # The product is imported here only: the services start on a Python without it.
    from oncepipe.errors import BrokerError  # noqa: PLC0415
    from oncepipe.kafka import AdminClient, apply_acls, pipeline_acls  # noqa: PLC0415

    rules = pipeline_acls(args.topic, args.group_prefix)
    for rule in rules:
        print(rule)
    if args.print:
        return 0
    kafka = Kafka(layout())
    admin = AdminClient(kafka.super_admin_config())
    try:
        print(f"kafka: {apply_acls(admin, rules)} ACLs applied", file=sys.stderr)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    return _run(args.cmd)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "install": _cmd_install,
    "tool": _cmd_tool,
    "up": _cmd_up,
    "down": _cmd_down,
    "clean": _cmd_clean,
    "kill": _cmd_kill,
    "restart": _cmd_restart,
    "status": _cmd_status,
    "env": _cmd_env,
    "logs": _cmd_logs,
    "run": _cmd_run,
    "acls": _cmd_acls,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m infra``."""
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="fetch Kafka jars and PostgreSQL binaries")
    sub.add_parser("tool", help="install a Debian tool when missing").add_argument(
        "name", choices=sorted(TOOLS)
    )
    for name in ("up", "down", "clean"):
        sub.add_parser(name).add_argument("services", nargs="*")
    for name in ("kill", "restart"):
        command = sub.add_parser(name)
        command.add_argument("service")
        command.add_argument("--node", type=int, help="one Kafka node (1-based) of a cluster")
    status = sub.add_parser("status")
    status.add_argument("--json", action="store_true")
    sub.add_parser("env")
    logs = sub.add_parser("logs")
    logs.add_argument("service")
    logs.add_argument("-n", type=int, default=50)
    acls = sub.add_parser("acls", help="apply (or --print) the pipeline's ACLs, secured Kafka")
    acls.add_argument("--topic", action="append", required=True, help="an event topic (repeat)")
    acls.add_argument("--group-prefix", required=True, help="consumer groups' name prefix")
    acls.add_argument("--print", action="store_true", help="print the rules, apply nothing")
    run = sub.add_parser("run")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        return COMMANDS[args.command](args)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
