"""The benchmark report's machine figures and the peak-memory marks they sit beside."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import pytest

from bench.machine import parse_pg_test_fsync
from bench.measure import Sample, summarise
from bench.report import render
from bench.services import _hwm_mb, _reset_hwm

PG_TEST_FSYNC = """\
1 second per test
O_DIRECT supported on this platform for open_datasync and open_sync.

Compare file sync methods using one 8kB write:
(in wal_sync_method preference order, except fdatasync is Linux's default)
        open_datasync                     12395.591 ops/sec      81 usecs/op
        fdatasync                         12079.118 ops/sec      83 usecs/op
        fsync                              9885.140 ops/sec     101 usecs/op
        fsync_writethrough                              n/a
        open_sync                         12303.090 ops/sec      81 usecs/op

Compare file sync methods using two 8kB writes:
(in wal_sync_method preference order, except fdatasync is Linux's default)
        fdatasync                          9657.227 ops/sec     104 usecs/op

Compare open_sync with different write sizes:
(This is designed to compare the cost of writing 16kB in different write
open_sync sizes.)
         1 * 16kB open_sync write         11451.565 ops/sec      87 usecs/op
        16 *  1kB open_sync writes          701.833 ops/sec    1425 usecs/op
"""


def test_pg_test_fsync_output_is_parsed_by_section_and_method() -> None:
    sections = parse_pg_test_fsync(PG_TEST_FSYNC)

    one = sections["Compare file sync methods using one 8kB write"]
    assert one["fdatasync"] == {"ops_per_s": 12079.118, "us_per_op": 83.0}
    assert "fsync_writethrough" not in one  # n/a here
    two = sections["Compare file sync methods using two 8kB writes"]
    assert two["fdatasync"]["us_per_op"] == 104
    sizes = sections["Compare open_sync with different write sizes"]
    assert sizes["16 *  1kB open_sync writes"]["us_per_op"] == 1425


def test_machine_results_render_as_a_table(tmp_path: Path) -> None:
    one = parse_pg_test_fsync(PG_TEST_FSYNC)["Compare file sync methods using one 8kB write"]
    data = {
        "suite": "machine", "quick": False, "started_at": "2026-11-27T05:00:00+0000",
        "cpu_model": "Some CPU", "cpus": 2, "seconds_per_test": 2,
        "pg_test_fsync": "/usr/lib/postgresql/17/bin/pg_test_fsync",
        "filesystem": "/dev/vda (ext4, mounted on /)", "wal_sync_method": "fdatasync",
        "one_8k_write": one,
    }  # fmt: skip
    (tmp_path / "machine.json").write_text(json.dumps(data))

    text = render(tmp_path)

    assert text.startswith("### machine (full run, 2026-11-27T05:00:00+0000)")
    assert "CPU: Some CPU, 2 logical cores" in text
    assert "| fdatasync | 12,079 | 83 |" in text


def test_rss_columns_appear_only_where_measured(tmp_path: Path) -> None:
    with_rss = Sample(1000, 0.5, 0.25, peak_rss_mb={"client": 80.0, "kafka": 400.0})
    without = Sample(1000, 1.0, 0.5)
    summary = summarise([with_rss, with_rss, with_rss])
    assert summary["client_peak_rss_mb"] == {"median": 80.0, "min": 80.0, "max": 80.0}
    assert "postgres_peak_rss_mb" not in summary

    def case(name: str, sample: Sample) -> dict[str, object]:
        s = summarise([sample])
        variant = {"name": "v", "summary": s, "samples": [sample.as_dict()],
                   "ratio_to_baseline": {"events_per_s": 1.0, "cpu_us_per_event": 1.0}}  # fmt: skip
        return {"case": name, "baseline": "v", "params": {}, "variants": [variant]}

    data = {"suite": "x", "cases": [case("measured", with_rss), case("older", without)]}
    (tmp_path / "x.json").write_text(json.dumps(data))

    measured, older = render(tmp_path).split("**older**")
    assert "| peak RSS MB client | PG max | broker |" in measured
    assert "| 80.0 | - | 400 |" in measured
    assert "peak RSS" not in older


def test_peak_rss_mark_resets_to_the_current_resident_set() -> None:
    if not _reset_hwm("self"):
        pytest.skip("no /proc/self/clear_refs here (kernel before 4.0)")
    before = _hwm_mb("self")
    # Fresh pages from the kernel: a bytearray could reuse heap pages that a long test
    # process freed but still holds resident, and leave the mark where it was.
    block = mmap.mmap(-1, 64 * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1  # touched: each page becomes resident
    grown = _hwm_mb("self")
    block.close()  # unmapped: the pages leave the resident set
    assert _reset_hwm("self")
    after = _hwm_mb("self")

    assert before is not None
    assert grown is not None
    assert after is not None
    assert grown >= before + 60
    assert after < grown - 30  # the 64 MB freed is no longer in the mark
