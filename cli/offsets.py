"""``oncepipe offsets show|compare|reset``: the offsets each consumer group resumes from."""

from __future__ import annotations

import sys
from typing import Any

import typer

from cli.shared import emit_json, state
from consumers import group as kafka_group
from consumers import offsets as store
from consumers import out_of_range
from oncepipe.db import connect
from oncepipe.errors import BrokerError, ConfigError, OncepipeError
from oncepipe.settings import Settings

__all__ = ["app"]

app = typer.Typer(
    help="Consumer offsets stored in PostgreSQL (the ones that count; Kafka's are for lag tools).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("show")
def show(
    ctx: typer.Context,
    group: str | None = typer.Option(None, "--group", help="only this consumer group"),
    check: bool = typer.Option(
        False,
        "--check",
        help="also compare each offset with its partition's log (asks Kafka): one outside it "
        "holds its partition until reset",
    ),
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """List stored offsets: group, topic, partition, next offset to apply."""
    settings = state(ctx).settings
    with connect(settings, "oncepipe-offsets") as conn, conn.cursor() as cursor:
        rows = store.list_stored(cursor, group)
    logs = _logs(settings, {r.topic for r in rows}) if check else {}
    out: list[dict[str, Any]] = []
    for r in rows:
        row: dict[str, Any] = {
            "consumer_group": r.consumer_group,
            "topic": r.topic,
            "partition": r.partition,
            "next_offset": r.next_offset,
            "updated_at": r.updated_at.isoformat(),
        }
        if check:
            row.update(_log_state(r.topic, r.partition, r.next_offset, logs))
        out.append(row)
    if as_json:
        emit_json(out)
        return
    for row in out:
        line = f"{row['consumer_group']}\t{row['topic']}\t{row['partition']}\t{row['next_offset']}"
        print(f"{line}\t{row['log']}" if check else line)
    print(f"{len(rows)} stored offset(s)", file=sys.stderr)


@app.command("compare")
def compare(
    ctx: typer.Context,
    group: str = typer.Option(..., "--group", help="the group to check (a rebuild, say)"),
    other: str = typer.Option(..., "--with", help="the group it must catch up with (the live one)"),
    topic: str | None = typer.Option(None, "--topic", help="only this topic"),
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Compare two groups' stored offsets per partition; exit 1 while GROUP is behind.

    Exit 0 once GROUP's offset is at or past OTHER's on every partition OTHER has stored.
    """
    settings = state(ctx).settings
    with connect(settings, "oncepipe-offsets") as conn, conn.cursor() as cursor:
        mine = {(r.topic, r.partition): r.next_offset for r in store.list_stored(cursor, group)}
        theirs = {(r.topic, r.partition): r.next_offset for r in store.list_stored(cursor, other)}
    keys = sorted(k for k in mine.keys() | theirs.keys() if topic is None or k[0] == topic)
    rows: list[dict[str, Any]] = [
        {
            "topic": t,
            "partition": p,
            "offset": mine.get((t, p)),
            "with_offset": theirs.get((t, p)),
            "behind": max(0, (theirs.get((t, p)) or 0) - (mine.get((t, p)) or 0)),
        }
        for t, p in keys
    ]
    behind = sum(row["behind"] for row in rows)
    if as_json:
        emit_json({"group": group, "with": other, "behind": behind, "partitions": rows})
    else:
        for row in rows:
            print(
                f"{row['topic']}\t{row['partition']}\t{row['offset']}\t{row['with_offset']}\t{row['behind']}"
            )
        lagging = sum(1 for row in rows if row["behind"])
        verdict = (
            f"{group!r} is behind {other!r} by {behind} record(s) on {lagging} partition(s)"
            if behind
            else f"{group!r} has caught up with {other!r}"
        )
        print(verdict, file=sys.stderr)
    if behind or not rows:
        raise typer.Exit(1)


def _logs(settings: Settings, topics: set[str]) -> dict[str, dict[int, tuple[int, int]] | None]:
    """Each topic's partitions with their (log start, log end); None for a topic not found."""
    found: dict[str, dict[int, tuple[int, int]] | None] = {}
    for topic in sorted(topics):
        try:
            found[topic] = kafka_group.partition_bounds(settings, topic, timeout=10)
        except (ConfigError, BrokerError) as exc:
            print(f"{topic}: {exc}", file=sys.stderr)
            found[topic] = None
    return found


def _log_state(
    topic: str, partition: int, offset: int, logs: dict[str, dict[int, tuple[int, int]] | None]
) -> dict[str, Any]:
    bounds = (logs.get(topic) or {}).get(partition)
    if bounds is None:
        return {"in_range": None, "log_start": None, "log_end": None, "log": "partition not found"}
    problem = out_of_range((topic, partition), offset, bounds)
    return {
        "in_range": problem is None,
        "log_start": bounds[0],
        "log_end": bounds[1],
        "log": "ok" if problem is None else problem.reason,
    }


def _targets(to: str, bounds: dict[int, tuple[int, int]]) -> dict[int, int]:
    if to == "earliest":
        return {p: low for p, (low, _) in bounds.items()}
    if to == "latest":
        return {p: high for p, (_, high) in bounds.items()}
    try:
        offset = int(to)
    except ValueError:
        raise ConfigError(f"--to {to!r}: use earliest, latest or an offset number") from None
    if offset < 0:
        raise ConfigError(f"--to {offset}: offsets are not negative")
    return dict.fromkeys(bounds, offset)


@app.command("reset")
def reset(
    ctx: typer.Context,
    group: str = typer.Option(..., "--group", help="consumer group"),
    topic: str = typer.Option(..., "--topic", help="topic"),
    to: str = typer.Option(..., "--to", help="earliest, latest, or an offset"),
    partition: int | None = typer.Option(None, "--partition", help="only this partition"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the change, make none"),
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
    force: bool = typer.Option(False, "--force", help="even while the group has live members"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """Move a group's stored offsets; refused while the group has live members unless --force."""
    settings = state(ctx).settings
    bounds = kafka_group.partition_bounds(settings, topic)
    if partition is not None:
        if partition not in bounds:
            raise ConfigError(
                f"--partition {partition}: {topic} has partitions 0..{len(bounds) - 1}"
            )
        bounds = {partition: bounds[partition]}
    targets = _targets(to, bounds)
    members = kafka_group.active_members(settings, group)
    if members and not force and not dry_run:
        raise OncepipeError(
            f"group {group!r} has {len(members)} live member(s); stop its workers first "
            "(or pass --force: running workers then fence themselves and resume from here)"
        )
    with connect(settings, "oncepipe-offsets") as conn:
        with conn.cursor() as cursor:
            current = store.load(cursor, group, [(topic, p) for p in targets])
        plan: list[dict[str, Any]] = [
            {
                "partition": p,
                "from": current[(topic, p)],
                "to": targets[p],
                "earliest": bounds[p][0],
                "latest": bounds[p][1],
            }
            for p in sorted(targets)
        ]
        _print_plan(group, topic, plan, dry_run=dry_run, as_json=as_json)
        if dry_run:
            return
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError("offsets reset changes state: pass --yes (or --dry-run)")
            typer.confirm(f"reset {len(plan)} partition(s) of {group!r}?", abort=True)
        with conn.cursor() as cursor:
            store.overwrite(cursor, group, topic, targets)
        conn.commit()
    print(f"reset {len(plan)} partition(s) of group {group!r} on {topic}", file=sys.stderr)


def _print_plan(
    group: str, topic: str, plan: list[dict[str, Any]], *, dry_run: bool, as_json: bool
) -> None:
    if as_json:
        emit_json({"group": group, "topic": topic, "dry_run": dry_run, "partitions": plan})
        return
    for row in plan:
        print(f"{group}\t{topic}\t{row['partition']}\t{row['from']} -> {row['to']}")
