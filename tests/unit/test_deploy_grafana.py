"""The Grafana dashboard asks only for metrics the workers export.

The exported names come from the code: the families of a real ``WorkerMetrics`` registry (with
the sample suffixes Prometheus gives counters and histograms), and the scrape-time families the
metrics endpoint builds in cli/observe.py (read from its source: they exist only while a
database answers).
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from oncepipe.metrics import WorkerMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "oncepipe.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
BUILT_IN = {"up"}  # Prometheus' own, per scrape target
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


@functools.cache
def exported() -> frozenset[str]:
    """Every series name a worker's /metrics can show."""
    registry = CollectorRegistry()
    WorkerMetrics(registry, "g")
    names = {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]
    }
    tree = ast.parse((REPO / "cli" / "observe.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            if node.func.id == "GaugeMetricFamily":
                names.add(first.value)
            elif node.func.id == "ScrapeCollector":
                names.add(f"{first.value}_up")
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, regexes
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, [$__rate_interval]
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping labels
    text = re.sub(r"(?<![A-Za-z0-9_:$])\d[\w.]*", " ", text)  # numbers, durations (5m)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?", text):
        word = match.group(0)
        if word.endswith("(") or match.group(1):  # a function call
            continue
        if word.lower() in PROMQL_WORDS:
            continue
        if match.start() > 0 and text[match.start() - 1] == "$":
            continue  # a Grafana variable
        names.add(word)
    return names


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression of the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str) and "label_values(" in value:
                inner = re.match(r"label_values\((.*?)(,[^,]*)?\)$", value)
                assert inner is not None, value
                yield inner.group(1)
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


DASH = json.loads(DASHBOARD.read_text())
EXPRS = list(expressions(DASH))


def test_the_exported_names_include_both_sources() -> None:
    names = exported()
    assert "oncepipe_consumer_records_total" in names  # the registry
    assert "oncepipe_consumer_batch_duration_seconds_bucket" in names
    assert "oncepipe_consumer_lag_records" in names  # scrape-time, cli/observe.py
    assert "oncepipe_outbox_pending_rows" in names
    assert "oncepipe_scrape_reads_up" in names


def test_the_name_parser_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (group, le) (rate(a_bucket{group=~"$group"}'
        "[$__rate_interval]))) / on (group) b_total offset 5m and time() - c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


@pytest.mark.parametrize("expr", EXPRS)
def test_every_query_names_a_metric_the_workers_export(expr: str) -> None:
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    unknown = names - exported() - BUILT_IN
    assert not unknown, f"{expr!r} asks for {sorted(unknown)}"


def test_a_misspelled_metric_is_caught() -> None:
    expr = "sum(rate(oncepipe_consumer_record_total[5m]))"
    assert metric_names(expr) - exported() == {"oncepipe_consumer_record_total"}


def test_the_dashboard_shows_what_operators_need() -> None:
    wanted = {
        "lag": "oncepipe_consumer_lag_records",
        "freshness": "oncepipe_consumer_freshness_seconds",
        "throughput by outcome": "oncepipe_consumer_records_total",
        "dead letters": "oncepipe_consumer_dead_letters_total",
        "outbox backlog": "oncepipe_outbox_pending_rows",
        "outbox age": "oncepipe_outbox_oldest_pending_age_seconds",
        "held partitions": "oncepipe_outbox_held_partitions",
    }
    used = set().union(*(metric_names(e) for e in EXPRS))
    for what, name in wanted.items():
        assert name in used, what
    assert any("outcome" in e and "oncepipe_consumer_records_total" in e for e in EXPRS)
    ids = [p["id"] for p in DASH["panels"]]
    assert len(ids) == len(set(ids))
