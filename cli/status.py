"""``oncepipe status``: how far each consumer group is, the outbox backlog, dead letters.

Reads PostgreSQL (stored offsets and their owners, failure counts, the outbox, the replay
ledger) and the broker (high watermarks, dead-letter topics), never a worker: it answers the
same with every worker stopped. Lag is the high watermark minus the offset stored in
PostgreSQL, the one that counts.

A partition is red (``stale`` in JSON) when it has records to apply and either its stored
offset has not moved for ``--stale-after`` seconds (its worker is down, stalled or failing) or
its group has no live member at the broker (no worker heartbeats for it). The outbox is red
when its oldest pending row is older than that bound. Exit code 1 when anything is red (without
``--watch``), so a script can alert on it. The relays' shards show which relay holds each
outbox shard (a lease past its term: that relay died or stalled, another takes the shard).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg
import typer

from cli.shared import EXIT_FAILURE, emit_json, state
from consumers import QueueMember, read_members, read_progress
from consumers import group as kafka_group
from oncepipe.db import connect
from oncepipe.errors import ConfigError, first_line
from oncepipe.kafka import KafkaConsumer
from oncepipe.settings import Settings
from producers import ShardOwner, read_backlog, read_owners
from schemas import dlq_topic_for

__all__ = ["status"]

_FAILURES = """
SELECT consumer_group, topic, partition, min("offset"), max(attempts), max(last_failure)
FROM oncepipe.consumer_failures
WHERE %(group)s::text IS NULL OR consumer_group = %(group)s::text
GROUP BY consumer_group, topic, partition ORDER BY 1, 2, 3
"""

_REPLAYED = """
SELECT dlq_topic, count(*) FILTER (WHERE outcome = 'sent'), count(*)
FROM oncepipe.dlq_replays GROUP BY dlq_topic ORDER BY dlq_topic
"""


class _Broker:
    """One metadata client for the whole snapshot; a broker that does not answer is reported."""

    def __init__(self, settings: Settings, timeout: float) -> None:
        self.timeout = timeout
        self.error: str | None = None
        self._client = KafkaConsumer.create(settings, "oncepipe-status")

    def high_watermark(self, topic: str, partition: int) -> int:
        try:
            return self._client.watermarks(topic, partition, timeout=self.timeout)[1]
        except Exception as exc:
            self.error = self.error or first_line(exc)
            raise

    def dead_letter_counts(self, dlq_topics: set[str], *, every: bool) -> dict[str, int | None]:
        """Records held by each dead-letter topic (high minus low watermark, summed).

        ``every``: also every other ``*.dlq`` topic the broker has.
        """
        counts: dict[str, int | None] = {}
        try:
            topics = self._client.list_topics(timeout=self.timeout).topics
        except Exception as exc:  # noqa: BLE001 - reported in the snapshot
            self.error = self.error or first_line(exc)
            return dict.fromkeys(dlq_topics)
        others = {t for t in topics if t.endswith(".dlq")} if every else set()
        for topic in sorted(dlq_topics | others):
            counts[topic] = (
                self._records(topic, topics[topic].partitions) if topic in topics else None
            )
        return counts

    def _records(self, topic: str, partitions: Iterable[int]) -> int | None:
        total = 0
        for partition in partitions:
            try:
                low, high = self._client.watermarks(topic, partition, timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001 - reported in the snapshot
                self.error = self.error or first_line(exc)
                return None
            total += high - low
        return total

    def members(self, settings: Settings, group: str) -> int | None:
        """Live members of ``group`` at the broker (workers heartbeating); None if unknown."""
        try:
            return len(kafka_group.active_members(settings, group, timeout=self.timeout))
        except Exception as exc:  # noqa: BLE001 - reported in the snapshot
            self.error = self.error or first_line(exc)
            return None

    def close(self) -> None:
        self._client.close()


def _owners(conn: psycopg.Connection[Any]) -> list[ShardOwner]:
    """The shard leases; none before migration 0013 (a relay of an older release)."""
    try:
        with conn.transaction():
            return read_owners(conn)
    except psycopg.errors.UndefinedTable:
        return []


def _relay_shards(owners: list[ShardOwner]) -> list[dict[str, Any]]:
    return [
        {
            "shard": o.shard,
            "owner": o.owner,
            "epoch": o.epoch,
            "lease_until": o.lease_until.isoformat() if o.lease_until else None,
            "live": o.live,
        }
        for o in owners
    ]


def _render_shards(shards: list[dict[str, Any]]) -> list[str]:
    """One line per relay with its shards, then shards with no current lease."""
    held: dict[str, list[int]] = {}
    orphans: list[str] = []
    for s in shards:
        if s["owner"] is not None and s["live"]:
            held.setdefault(s["owner"], []).append(s["shard"])
        else:
            late = f" (lease of {s['owner']} ran out)" if s["owner"] else ""
            orphans.append(f"{s['shard']}{late}")
    if not held and all(s["owner"] is None for s in shards):
        return [f"relays: none holds a shard ({len(shards)} free)"] if shards else []
    lines = [
        f"relay {owner}: shards {','.join(map(str, ids))}" for owner, ids in sorted(held.items())
    ]
    if orphans:
        lines.append(f"relay shards without a live owner: {', '.join(orphans)}")
    return lines


def snapshot(
    settings: Settings, group: str | None, stale_after_s: float, timeout: float
) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-able data."""
    now = datetime.now(UTC)
    broker = _Broker(settings, timeout)
    try:
        with connect(settings, "oncepipe-status", autocommit=True) as conn:
            progress = read_progress(conn, broker.high_watermark, group)
            backlog = read_backlog(conn)
            owners = _owners(conn)
            failures = conn.execute(_FAILURES, {"group": group}).fetchall()
            replayed = {row[0]: (row[1], row[2]) for row in conn.execute(_REPLAYED)}
            queue = read_members(conn, group)
        dlq_topics = {dlq_topic_for(p.topic) for p in progress} | set(replayed)
        dead = broker.dead_letter_counts(dlq_topics, every=group is None)
        members = {
            name: broker.members(settings, name) for name in sorted({p.group for p in progress})
        }
    finally:
        broker.close()
    partitions = []
    for p in progress:
        idle_s = (now - p.committed_at).total_seconds()
        unattended = members[p.group] == 0
        partitions.append(
            {
                "group": p.group,
                "topic": p.topic,
                "partition": p.partition,
                "stored_offset": p.stored_offset,
                "high_watermark": p.high_watermark,
                "lag": p.lag,
                "last_commit": p.committed_at.isoformat(),
                "last_commit_age_s": round(idle_s, 1),
                "owner": p.owner,
                "owner_since": p.owner_since.isoformat() if p.owner_since else None,
                "stale": (p.lag is None or p.lag > 0) and (idle_s > stale_after_s or unattended),
            }
        )
    return {
        "at": now.isoformat(),
        "stale_after_s": stale_after_s,
        "broker_error": broker.error,
        "groups": [
            {
                "group": name,
                "members": count,
                "lag": sum(p["lag"] or 0 for p in partitions if p["group"] == name),
            }
            for name, count in members.items()
        ],
        "partitions": partitions,
        "held_partitions": [
            {
                "group": g,
                "topic": t,
                "partition": p,
                "offset": o,
                "attempts": a,
                "last_failure": last.isoformat(),
            }
            for g, t, p, o, a, last in failures
        ],
        "outbox": {
            "pending": backlog.pending,
            "oldest_created_at": backlog.oldest_created_at.isoformat()
            if backlog.oldest_created_at
            else None,
            "oldest_age_s": round(backlog.oldest_age_s, 1),
            "held_partitions": [
                {"topic": t, "partition": p, "until": u.isoformat()} for t, p, u in backlog.held
            ],
            "stale": backlog.oldest_age_s > stale_after_s,
        },
        "relay_shards": _relay_shards(owners),
        "queue_members": _queue_members(queue, now),
        "dead_letters": [
            {"topic": topic, "records": count, "replayed": replayed.get(topic, (0, 0))[0]}
            for topic, count in sorted(dead.items())
        ],
    }


def _queue_members(members: list[QueueMember], now: datetime) -> list[dict[str, Any]]:
    """Queue mode: each share-group member's counts, as that worker saw them."""
    return [
        {
            "group": m.group,
            "member": m.member,
            "acquired": m.acquired,
            "in_flight": m.in_flight,
            "acknowledged": m.acknowledged,
            "released": m.released,
            "redelivered": m.redelivered,
            "refused": m.refused,
            "updated_age_s": round((now - m.updated_at).total_seconds(), 1),
            "left": m.left_at is not None,
        }
        for m in members
    ]


def _render_queue(members: list[dict[str, Any]]) -> list[str]:
    return [
        f"queue {m['group']} member {m['member']}{' (left)' if m['left'] else ''}: "
        f"acquired {m['acquired']}, in flight {m['in_flight']}, acknowledged "
        f"{m['acknowledged']}, released {m['released']}, redelivered {m['redelivered']} "
        f"({m['updated_age_s']}s ago)"
        for m in members
    ]


def _red(text: str, color: bool) -> str:
    return typer.style(text, fg=typer.colors.RED, bold=True) if color else text


def render(data: dict[str, Any], *, color: bool) -> str:
    """The snapshot as text: one line per partition, then the outbox and dead letters."""
    lines = [f"oncepipe status at {data['at']}"]
    if data["broker_error"]:
        lines.append(_red(f"broker unreachable: {data['broker_error']}", color))
    for g in data["groups"]:
        count = "?" if g["members"] is None else g["members"]
        line = f"group {g['group']}: {count} live member(s), lag {g['lag']}"
        lines.append(_red(line, color) if g["members"] == 0 and g["lag"] else line)
    lines.append("GROUP\tTOPIC\tPARTITION\tSTORED\tHIGH\tLAG\tLAST COMMIT (s ago)\tOWNER")
    for p in data["partitions"]:
        unknown = "?"
        line = (
            f"{p['group']}\t{p['topic']}\t{p['partition']}\t{p['stored_offset']}\t"
            f"{unknown if p['high_watermark'] is None else p['high_watermark']}\t"
            f"{unknown if p['lag'] is None else p['lag']}\t{p['last_commit_age_s']}\t"
            f"{p['owner'] or '-'}"
        )
        lines.append(_red(line + "\tSTALE", color) if p["stale"] else line)
    if not data["partitions"]:
        lines.append("(no stored offsets yet)")
    for h in data["held_partitions"]:
        lines.append(
            f"held: {h['group']} {h['topic']}[{h['partition']}] at offset {h['offset']}, "
            f"{h['attempts']} attempt(s), last failure {h['last_failure']}"
        )
    box = data["outbox"]
    outbox = f"outbox: {box['pending']} pending, oldest {box['oldest_age_s']}s old"
    if box["held_partitions"]:
        outbox += f", {len(box['held_partitions'])} partition(s) held"
    lines.append(_red(outbox + " STALE", color) if box["stale"] else outbox)
    lines += _render_shards(data["relay_shards"])
    lines += _render_queue(data["queue_members"])
    for d in data["dead_letters"]:
        records = "?" if d["records"] is None else d["records"]
        lines.append(f"dead letters: {d['topic']}: {records} record(s), {d['replayed']} replayed")
    return "\n".join(lines)


def red(data: dict[str, Any]) -> bool:
    """True when a partition or the outbox is stale, or the broker did not answer."""
    stale = any(p["stale"] for p in data["partitions"]) or data["outbox"]["stale"]
    return stale or bool(data["broker_error"])


def status(
    ctx: typer.Context,
    group: str | None = typer.Option(None, "--group", help="only this consumer group"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document"),
    watch: float | None = typer.Option(
        None, "--watch", min=0.5, help="print again every SECONDS until Ctrl-C", metavar="SECONDS"
    ),
    stale_after: float = typer.Option(
        60.0,
        "--stale-after",
        min=0.0,
        help="red when a partition with lag has not committed for this many seconds, or the "
        "outbox's oldest pending row is this old",
    ),
    timeout: float = typer.Option(
        5.0, "--timeout", min=0.1, help="seconds to wait for each broker answer"
    ),
) -> None:
    """Lag per group and partition (stored offsets against the log), outbox, dead letters.

    Reads PostgreSQL and the broker, so it works while every worker is stopped. Exits 1
    when something is red (a partition stale, the outbox backlog too old, the broker down).
    """
    settings = state(ctx).settings
    color = sys.stdout.isatty()
    while True:
        try:
            data = snapshot(settings, group, stale_after, timeout)
        except psycopg.errors.UndefinedTable as exc:
            raise ConfigError(f"{first_line(exc)}: run oncepipe migrate first") from None
        except psycopg.Error as exc:
            print(f"oncepipe status: PostgreSQL failed: {first_line(exc)}", file=sys.stderr)
            raise typer.Exit(EXIT_FAILURE) from None
        if as_json:
            emit_json(data)
        else:
            if watch is not None and color:
                sys.stdout.write("\x1b[H\x1b[2J")
            print(render(data, color=color), flush=True)
        if watch is None:
            if red(data):
                raise typer.Exit(EXIT_FAILURE)
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return
