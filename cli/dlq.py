"""``oncepipe dlq``: list, group, show and replay dead letters (oncepipe, Spring, Connect, Streams).

Data goes to stdout (a table on a terminal, tab-separated lines otherwise, JSON with
``--json``); messages and progress go to stderr.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli import personal_data
from cli.event_types import IMPORT, import_event_modules
from cli.options import build_settings
from cli.shared import EXIT_FAILURE, EXIT_USAGE, emit_json, state
from consumers import STAGES
from consumers.dlq import (
    DeadLetter,
    DeadLetterReader,
    Replayer,
    ReplayOutcome,
    Scan,
    Selection,
    decode_payload,
    discard_blockers,
    escape,
    fingerprint_of,
    group_failures,
    hex_dump,
    lenient_codec,
    parked_counts,
)
from oncepipe.db import connect
from oncepipe.errors import OncepipeError, first_line
from oncepipe.settings import Settings
from producers import ProducerSettings, check_topic_name

__all__ = ["dlq_app"]

dlq_app = typer.Typer(
    help="Inspect and replay dead letters (oncepipe, Spring, Connect and Streams headers).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_MESSAGE_CHARS = 60

# -- shared options --------------------------------------------------------------------------

TOPIC = typer.Option(
    None, "--topic", "-t", help="source topic, or dead-letter topic (*.dlq, *.DLT); repeatable"
)
DLQ_TOPIC = typer.Option(
    None, "--dlq-topic", help="read this topic as a dead-letter topic whatever its name"
)
GROUP = typer.Option(None, "--group", help="consumer group that gave up")
ERROR = typer.Option(None, "--error", help="error class or message text (substring)")
STAGE = typer.Option(None, "--stage", help=f"failure stage: {', '.join(STAGES)}")
SINCE = typer.Option(None, "--since", help="failed at or after: ISO-8601, or 30m, 2h, 7d ago")
UNTIL = typer.Option(None, "--until", help="failed before: ISO-8601, or 30m, 2h, 7d ago")
EVENT_ID = typer.Option(None, "--event-id", help="event id; repeatable")
JSON = typer.Option(False, "--json", help="print the result as JSON")


def _moment(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = int(relative[1]), _UNITS[relative[2]]
        return datetime.now(UTC) - timedelta(**{unit: amount})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither ISO-8601 (2025-03-01T12:00) nor relative (30m, 2h, 7d)",
            param_hint=flag,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _selection(
    topics: list[str] | None,
    dlq_topics: list[str] | None,
    group: str | None,
    error: str | None,
    stage: str | None,
    since: str | None,
    until: str | None,
    event_ids: list[str] | None,
    *,
    fingerprint: str | None = None,
    refs: Sequence[str] = (),
) -> Selection:
    if stage is not None and stage not in STAGES:
        raise typer.BadParameter(f"choose one of {', '.join(STAGES)}", param_hint="--stage")
    return Selection(
        topics=tuple(topics or ()),
        dlq_topics=tuple(dlq_topics or ()),
        group=group,
        error=error,
        stage=stage,
        since=_moment(since, "--since"),
        until=_moment(until, "--until"),
        event_ids=frozenset(event_ids or ()),
        fingerprint=fingerprint,
        refs=tuple(refs),
    )


def _report_skipped(scan: Scan) -> None:
    for reason in scan.skipped[:5]:
        print(f"oncepipe: skipped a record that is not a dead letter: {reason}", file=sys.stderr)
    if len(scan.skipped) > 5:
        print(f"oncepipe: ... and {len(scan.skipped) - 5} more", file=sys.stderr)


# -- rendering -------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


def _first_line(text: str, limit: int = _MESSAGE_CHARS) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _text(raw: bytes | None) -> str | None:
    """Bytes as escaped text (see ``escape``); None stays None (a null header, no key)."""
    return None if raw is None else escape(raw)


def _hex(raw: bytes | None) -> str | None:
    return None if raw is None else raw.hex()


def _letter_data(letter: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ref": letter.ref,
        "dlq_topic": letter.dlq_topic,
        "dlq_partition": letter.dlq_partition,
        "dlq_offset": letter.dlq_offset,
        "dialect": letter.dialect,
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "source_timestamp": _iso(letter.source_timestamp),
        "consumer_group": letter.consumer_group,
        "stage": letter.stage,
        "error_class": letter.error_class,
        "error_message": letter.error_message,
        "attempts": letter.attempts,
        "first_failure": _iso(letter.first_failure),
        "last_failure": _iso(letter.last_failure),
        "failed_at": _iso(letter.failed_at),
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "fingerprint": fingerprint_of(letter),
        "replay_count": letter.replay_count,
    }
    if full:
        data |= {
            "key": _text(letter.key),
            "key_hex": _hex(letter.key),
            "headers": [[escape(name), _text(raw)] for name, raw in letter.headers],
            "headers_hex": [[name.encode().hex(), _hex(raw)] for name, raw in letter.headers],
            "extras": dict(letter.extras),
            "dlq_timestamp": _iso(letter.dlq_timestamp),
            "stacktrace": letter.stacktrace,
        }
    return data


def _short_class(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _print_rows(headers: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-separated lines (header first) for pipes."""
    if sys.stdout.isatty():
        table = Table(*headers, box=None, header_style="bold")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    print("\t".join(headers))
    for row in rows:
        print("\t".join(cell.replace("\t", " ") for cell in row))


# -- commands --------------------------------------------------------------------------------


@dlq_app.command("list")
def list_(
    ctx: typer.Context,
    topic: list[str] | None = TOPIC,
    dlq_topic: list[str] | None = DLQ_TOPIC,
    group: str | None = GROUP,
    error: str | None = ERROR,
    stage: str | None = STAGE,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    event_id: list[str] | None = EVENT_ID,
    limit: int = typer.Option(100, "--limit", min=1, help="show at most this many"),
    as_json: bool = JSON,
) -> None:
    """List dead letters, oldest first (reads the dead-letter topics to their current end)."""
    settings = state(ctx).settings
    selection = _selection(topic, dlq_topic, group, error, stage, since, until, event_id)
    scan = DeadLetterReader(settings).select(selection, limit=limit)
    _report_skipped(scan)
    parked = _parked(settings, group)
    if as_json:
        items = [
            _letter_data(letter) | {"parked": parked.get(_blocker_of(letter), 0)}
            for letter in scan.letters
        ]
        emit_json({"topics": scan.topics, "count": len(items), "dead_letters": items})
        return
    many = len(scan.topics) > 1
    rows = []
    for letter in scan.letters:
        where = f"{letter.dlq_partition}:{letter.dlq_offset}"
        source = f"{letter.source_topic or '?'}[{letter.source_partition}]@{letter.source_offset}"
        failed = letter.failed_at
        rows.append(
            [
                f"{letter.dlq_topic}:{where}" if many else where,
                source,
                letter.event_id or "",
                letter.event_type or "",
                letter.stage or "",
                _short_class(letter.error_class),
                _first_line(letter.error_message),
                f"{failed:%Y-%m-%d %H:%M:%S}" if failed else "",
                str(letter.attempts or ""),
                str(parked.get(_blocker_of(letter), "")),
            ]
        )
    _print_rows(
        [
            "dlq",
            "source",
            "event_id",
            "type",
            "stage",
            "error",
            "message",
            "failed",
            "tries",
            "parked",
        ],
        rows,
    )
    print(
        f"{len(rows)} dead letter(s) in {', '.join(scan.topics) or 'no dead-letter topic'}",
        file=sys.stderr,
    )


def _blocker_of(letter: DeadLetter) -> tuple[str, str, int, int]:
    return (
        letter.consumer_group or "",
        letter.source_topic or "",
        letter.source_partition if letter.source_partition is not None else -1,
        letter.source_offset if letter.source_offset is not None else -1,
    )


def _parked(settings: Settings, group: str | None) -> dict[tuple[str, str, int, int], int]:
    """Events parked behind each blocker (park-key); empty when PostgreSQL cannot say."""
    try:
        with connect(settings, "oncepipe-dlq") as conn:
            return parked_counts(conn, group)
    except (OncepipeError, psycopg.Error) as exc:
        print(f"oncepipe: parked counts unavailable ({first_line(exc)})", file=sys.stderr)
        return {}


@dlq_app.command("failures")
def failures(
    ctx: typer.Context,
    topic: list[str] | None = TOPIC,
    dlq_topic: list[str] | None = DLQ_TOPIC,
    group: str | None = GROUP,
    error: str | None = ERROR,
    stage: str | None = STAGE,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    as_json: bool = JSON,
) -> None:
    """Dead letters grouped by failure fingerprint (error class + masked message)."""
    settings = state(ctx).settings
    selection = _selection(topic, dlq_topic, group, error, stage, since, until, None)
    scan = DeadLetterReader(settings).select(selection)
    _report_skipped(scan)
    groups = group_failures(scan.letters)
    if as_json:
        emit_json(
            {
                "topics": scan.topics,
                "dead_letters": len(scan.letters),
                "failures": [
                    {
                        "fingerprint": g.fingerprint,
                        "count": g.count,
                        "error_class": g.error_class,
                        "message": g.message,
                        "first_seen": _iso(g.first_seen),
                        "last_seen": _iso(g.last_seen),
                        "source_topics": sorted(g.source_topics),
                        "stages": sorted(g.stages),
                        "sample": g.sample_ref,
                    }
                    for g in groups
                ],
            }
        )
        return
    rows = [
        [
            g.fingerprint,
            str(g.count),
            _short_class(g.error_class),
            _first_line(g.message, 70),
            f"{g.first_seen:%Y-%m-%d %H:%M}" if g.first_seen else "",
            f"{g.last_seen:%Y-%m-%d %H:%M}" if g.last_seen else "",
            ",".join(sorted(g.source_topics)),
        ]
        for g in groups
    ]
    _print_rows(["fingerprint", "count", "error", "message", "first", "last", "topics"], rows)
    print(
        f"{len(groups)} failure(s) over {len(scan.letters)} dead letter(s); "
        "replay one with: oncepipe dlq replay --fingerprint <id>",
        file=sys.stderr,
    )


@dlq_app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="<dlq-topic>:<partition>:<offset>"),
    as_json: bool = JSON,
    modules: list[str] | None = IMPORT,
) -> None:
    """One dead letter: where it came from, why it failed, its event (or bytes), its trace."""
    settings = state(ctx).settings
    import_event_modules(modules)
    letter = DeadLetterReader(settings).fetch(ref)
    payload = decode_payload(lenient_codec(settings), letter.value)
    if as_json:
        emit_json(
            _letter_data(letter, full=True)
            | {
                "event": payload.event,
                "decoded_event_type": payload.event_type,
                "decode_error": payload.error,
                "value_hex": None if payload.error is None else hex_dump(letter.value),
                "value_bytes": None if letter.value is None else len(letter.value),
            }
        )
        return
    data = _letter_data(letter, full=True)
    lines = [f"dead letter {letter.ref} ({letter.dialect})"]
    for name in (
        "source_topic", "source_partition", "source_offset", "source_timestamp",
        "consumer_group", "stage", "error_class", "error_message", "attempts",
        "first_failure", "last_failure", "dlq_timestamp", "event_id", "event_type",
        "fingerprint", "replay_count", "key",
    ):  # fmt: skip
        if data[name] not in (None, ""):
            lines.append(f"  {name:<17} {data[name]}")
    lines += [f"  {name:<17} {escape(value)}" for name, value in letter.extras.items()]
    lines.append("headers")
    lines += [
        f"  {escape(name)}: {'(null)' if raw is None else escape(raw)}"
        for name, raw in letter.headers
    ] or ["  (none)"]
    if payload.event is not None:
        lines.append(f"event ({payload.event_type})")
        lines += [f"  {name}: {value}" for name, value in payload.event.items()]
    if payload.error is not None:
        lines += [f"value does not decode: {payload.error}", hex_dump(letter.value)]
    if letter.stacktrace:
        lines += ["stack trace", letter.stacktrace.rstrip()]
    print("\n".join(lines))


@dlq_app.command("replay")
def replay(
    ctx: typer.Context,
    refs: list[str] | None = typer.Argument(None, help="<dlq-topic>:<partition>:<offset> ..."),
    topic: list[str] | None = TOPIC,
    dlq_topic: list[str] | None = DLQ_TOPIC,
    group: str | None = GROUP,
    error: str | None = ERROR,
    stage: str | None = STAGE,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    event_id: list[str] | None = EVENT_ID,
    fingerprint: str | None = typer.Option(None, "--fingerprint", help="from `dlq failures`"),
    to: str | None = typer.Option(None, "--to", help="publish here instead of the source topic"),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="replay at most this many not replayed before"
    ),
    rate: float | None = typer.Option(None, "--rate", min=0.1, help="dead letters per second"),
    force: bool = typer.Option(False, "--force", help="replay again what was replayed before"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be sent; send nothing"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    as_json: bool = JSON,
) -> None:
    """Re-publish dead letters to their source topic, each once (a ledger remembers)."""
    if not dry_run and not yes and not sys.stdin.isatty():
        print(
            "oncepipe: refusing to replay without confirmation: no terminal to ask on; "
            "pass --yes (or --dry-run to look first)",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_USAGE)
    if to is not None:
        check_topic_name(to, "--to")
    settings = state(ctx).settings
    selection = _selection(
        topic, dlq_topic, group, error, stage, since, until, event_id,
        fingerprint=fingerprint, refs=refs or (),
    )  # fmt: skip
    # --limit counts what is left to replay, so the ledger sorts the whole selection first.
    unreplayed_limit = None if force else limit
    scan = DeadLetterReader(settings).select(
        selection, limit=limit if unreplayed_limit is None else None
    )
    _report_skipped(scan)
    replayer = Replayer(settings, build_settings(ProducerSettings))
    letters = scan.letters
    if unreplayed_limit is not None:
        letters, passed = replayer.unreplayed(letters, unreplayed_limit)
        if passed:
            print(
                f"oncepipe: passed over {passed} dead letter(s) replayed before "
                "(--force replays them again)",
                file=sys.stderr,
            )
    if dry_run:
        _print_outcomes(replayer.plan(letters, to=to, force=force), dry_run=True, as_json=as_json)
        return
    if not letters:
        _print_outcomes([], dry_run=False, as_json=as_json)
        return
    if not yes:
        where = to or ", ".join(sorted({str(letter.source_topic) for letter in letters}))
        if not typer.confirm(f"Replay {len(letters)} dead letter(s) to {where}?", err=True):
            print("oncepipe: nothing replayed", file=sys.stderr)
            raise typer.Exit(EXIT_FAILURE)
    outcomes = _run_with_progress(replayer, letters, to=to, force=force, rate=rate)
    _print_outcomes(outcomes, dry_run=False, as_json=as_json)
    if any(o.outcome == "failed" for o in outcomes):
        raise typer.Exit(EXIT_FAILURE)


@dlq_app.command("discard")
def discard(
    ctx: typer.Context,
    refs: list[str] = typer.Argument(..., help="<dlq-topic>:<partition>:<offset> ..."),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
    as_json: bool = JSON,
) -> None:
    """Give up on dead letters for good: recorded in the ledger; keys they park are released.

    With ``--on-poison park-key``, the events parked behind a discarded dead letter are then
    applied by the worker owning their partition, in their original order.
    """
    if not yes and not sys.stdin.isatty():
        print(
            "oncepipe: refusing to discard without confirmation: no terminal to ask on; pass --yes",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_USAGE)
    settings = state(ctx).settings
    selection = _selection(None, None, None, None, None, None, None, None, refs=refs)
    scan = DeadLetterReader(settings).select(selection)
    _report_skipped(scan)
    letters = scan.letters
    if not letters:
        print("oncepipe: no dead letter matches; nothing discarded", file=sys.stderr)
        raise typer.Exit(EXIT_FAILURE)
    if not yes and not typer.confirm(f"Discard {len(letters)} dead letter(s)?", err=True):
        print("oncepipe: nothing discarded", file=sys.stderr)
        raise typer.Exit(EXIT_FAILURE)
    with connect(settings, "oncepipe-dlq") as conn:
        released = discard_blockers(
            conn,
            [
                (*_blocker_of(letter), letter.dlq_topic, letter.dlq_partition, letter.dlq_offset,
                 letter.event_id)
                for letter in letters
            ],
        )  # fmt: skip
    if as_json:
        emit_json({"discarded": [letter.ref for letter in letters], "keys_released": released})
    else:
        for letter in letters:
            print(f"{letter.ref}\tdiscarded")
    print(
        f"{len(letters)} dead letter(s) discarded; {released} parked key(s) released",
        file=sys.stderr,
    )


def _run_with_progress(
    replayer: Replayer,
    letters: list[DeadLetter],
    *,
    to: str | None,
    force: bool,
    rate: float | None,
) -> list[ReplayOutcome]:
    total = len(letters)
    if not sys.stderr.isatty():
        done = 0

        def plain(batch: Sequence[ReplayOutcome]) -> None:
            nonlocal done
            done += len(batch)
            print(f"oncepipe: replay {done}/{total}", file=sys.stderr)

        return replayer.replay(letters, to=to, force=force, rate=rate, progress=plain)
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("replay", total=total)
        return replayer.replay(
            letters,
            to=to,
            force=force,
            rate=rate,
            progress=lambda batch: bar.advance(task, len(batch)),
        )


def _print_outcomes(outcomes: list[ReplayOutcome], *, dry_run: bool, as_json: bool) -> None:
    counts = Counter(o.outcome for o in outcomes)
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "selected": len(outcomes),
                "counts": dict(counts),
                "replays": [o.__dict__ for o in outcomes],
            }
        )
    else:
        for o in outcomes:
            landed = f"{o.destination}:{o.partition}:{o.offset}" if o.offset is not None else ""
            count = "" if o.replay_count is None else str(o.replay_count)
            print("\t".join([o.ref, o.outcome, o.destination or "", landed, count, o.reason]))
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "none"
    print(f"{len(outcomes)} dead letter(s) selected: {summary}", file=sys.stderr)


# Personal data (cli/personal_data.py): listed after the commands above.
dlq_app.command("purge")(personal_data.purge)
dlq_app.command("erase")(personal_data.erase)
