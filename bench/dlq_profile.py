"""``python -m bench.dlq_profile``: where a DLQ replay's time goes, with pyinstrument.

Writes COUNT oncepipe dead letters (as ``bench.dlq`` does), reads them, runs one replay
unprofiled (warm-up: the ledger's pages, the broker's partitions), clears the ledger, then
runs ``Replayer.replay`` of the same dead letters under pyinstrument and writes
``bench/results/<out>``: the replay's wall, client CPU and server CPU per dead letter, how
many ledger statements and transactions it sent, then the call tree in percent of wall time
and the frames with the most self time. pyinstrument samples the Python thread only:
librdkafka's threads and the servers are in the CPU figures of the header, not in the tree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import psycopg

from bench.dlq import BATCH, _clear_ledger, _read, _replay, write_dead_letters
from bench.env import BenchEnv
from bench.profile import _self_times, new_profiler
from bench.results import RESULTS_DIR
from bench.services import ServiceCpu
from oncepipe.kafka import create_admin, create_topics
from oncepipe.logging import configure_logging
from oncepipe.settings import load_settings


class _StatementCount:
    """Counts the statements and the transactions (commits) this process's connections send.

    A transaction is an outermost ``Connection.transaction()`` block, or a statement sent while
    its connection is idle outside one (autocommit: its own transaction).
    """

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        self._saved: tuple[Any, Any] = (None, None)

    def __enter__(self) -> _StatementCount:
        execute, transaction = self._saved = psycopg.Cursor.execute, psycopg.Connection.transaction
        idle = psycopg.pq.TransactionStatus.IDLE

        def counted(cursor: Any, *args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            self.transactions += cursor.connection.info.transaction_status == idle
            return execute(cursor, *args, **kwargs)

        def block(conn: Any, *args: Any, **kwargs: Any) -> Any:
            # Counted as one; its statements then run inside it (not idle), so not again.
            self.transactions += conn.info.transaction_status == idle
            return transaction(conn, *args, **kwargs)

        psycopg.Cursor.execute = counted  # type: ignore[method-assign,assignment]
        psycopg.Connection.transaction = block  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        execute, transaction = self._saved
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        psycopg.Connection.transaction = transaction  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    """Profile one replay and write the text report."""
    parser = argparse.ArgumentParser(prog="python -m bench.dlq_profile")
    parser.add_argument("--dead-letters", type=int, default=5_000)
    parser.add_argument("--out", default="dlq-replay-profile.txt", help="file in bench/results")
    args = parser.parse_args(argv)
    profiler = new_profiler("bench.dlq_profile")
    configure_logging(load_settings(log_level="WARNING"))
    env = BenchEnv()
    count = args.dead_letters
    cpu = ServiceCpu()
    with env.topic("dlqprof") as topic:
        dlq = f"{topic}.dlq"
        create_topics(create_admin(env.settings), {dlq: 1})
        try:
            write_dead_letters(env.settings, topic, dlq, count)
            letters = _read(env, dlq, count)
            _replay(env, letters)  # warm-up
            _clear_ledger(env, dlq)
            before = cpu.snapshot()
            with _StatementCount() as sql:
                wall, process = time.perf_counter(), time.process_time()
                profiler.start()
                _replay(env, letters)
                profiler.stop()
                wall, process = time.perf_counter() - wall, time.process_time() - process
            after = cpu.snapshot()
        finally:
            _clear_ledger(env, dlq)
            env.delete_topic(dlq)
    servers = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    per = 1e6 / count
    header = (
        f"oncepipe dlq replay, batch {BATCH}, {count} click dead letters: "
        f"{count / wall:,.0f} dead letters/s while profiled "
        f"(load average {os.getloadavg()[0]:.1f} at the end)\n"
        f"per dead letter: wall {wall * per:.1f} us, client CPU {process * per:.1f} us "
        f"(every thread), PostgreSQL CPU {servers.get('postgres', 0.0) * per:.1f} us, "
        f"broker CPU {servers.get('kafka', 0.0) * per:.1f} us\n"
        f"PostgreSQL: {sql.statements} statements in {sql.transactions} transactions "
        f"(commits) for {count // BATCH} chunks\n\n"
    )
    tree = profiler.output_text(time="percent_of_total", show_all=False)
    path = RESULTS_DIR / args.out
    path.write_text(f"{header}{tree}\n{_self_times(profiler)}")
    print(f"bench.dlq_profile: wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
