"""The import graph runs one way: contract <- plumbing <- producers <- consumers <- command line.

``schemas`` (the contract) imports nothing of ours; the plumbing (``oncepipe``) imports only the
contract; ``producers`` never imports ``consumers``; the HTTP ``ingest`` sits beside
``consumers`` on top of ``producers`` (it enqueues) and neither imports the other; nothing in
the product imports the command line, the demo, the dev services, the tests or the benchmarks;
and only ``oncepipe/kafka.py`` imports confluent-kafka. Another package is used through its
face (the names its ``__init__`` exports) or, for the plumbing, its public modules: the product
and the demo never import another package's internal modules, and the consumer core never
imports the DLQ tool.
Every import counts, the lazy ones inside functions too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What each product package may import of ours, besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    "schemas": frozenset(),
    "oncepipe": frozenset({"schemas"}),
    "producers": frozenset({"schemas", "oncepipe"}),
    "ingest": frozenset({"schemas", "oncepipe", "producers"}),
    "consumers": frozenset({"schemas", "oncepipe", "producers"}),
    "console": frozenset({"schemas", "oncepipe", "producers", "consumers"}),
    "cli": frozenset({"schemas", "oncepipe", "producers", "ingest", "consumers", "console"}),
    "demo": frozenset({"schemas", "oncepipe", "producers", "ingest", "consumers", "cli", "infra"}),
}
PRODUCT = ("schemas", "oncepipe", "producers", "ingest", "consumers", "console", "cli")
OURS = frozenset({*ALLOWED, "infra", "tests", "bench"})
# What another package may import: a face, or one of the plumbing's public modules.
FACES = frozenset(
    {"schemas", "oncepipe", "producers", "ingest", "consumers", "consumers.dlq", "console", "cli"}
    | {"consumers.handlers"}
    | {f"oncepipe.{name}" for name in ("settings", "db", "kafka", "logging", "conninfo")}
    | {f"oncepipe.{name}" for name in ("migrations", "hooks", "signals", "errors")}
    | {f"oncepipe.{name}" for name in ("metrics", "health")}
)
# Third-party packages with exactly one importer in the product.
SOLE_IMPORTERS = {"confluent_kafka": "oncepipe/kafka.py"}


@dataclass(frozen=True)
class Edge:
    """One import statement: the file, its line, and the imported module."""

    path: str
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def imports(root: Path, package: str) -> Iterator[Edge]:
    """Every absolute import in the package's modules, at any depth of the code."""
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Edge(relative, node.lineno, alias.name)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield Edge(relative, node.lineno, node.module)


def forbidden_edges(root: Path) -> list[str]:
    """Every import that runs against the direction of the graph, as readable lines."""
    found: list[str] = []
    for package, allowed in ALLOWED.items():
        for edge in imports(root, package):
            top = edge.module.split(".")[0]
            if top in OURS and top != package and top not in allowed:
                found.append(f"{edge} ({package} may import only {sorted(allowed) or 'nothing'})")
            elif top in PRODUCT and top != package and edge.module not in FACES:
                found.append(f"{edge} (an internal module: import it through its package's face)")
            core = package == "consumers" and not edge.path.startswith("consumers/dlq/")
            if core and edge.module.startswith("consumers.dlq"):
                found.append(f"{edge} (the consumer core does not import the DLQ tool)")
            sole = SOLE_IMPORTERS.get(top)
            if sole is not None and edge.path != sole:
                found.append(f"{edge} (only {sole} may import {top})")
    return found


def test_the_product_imports_run_one_way() -> None:
    assert forbidden_edges(REPO) == []


def test_every_product_package_is_checked() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert set(ALLOWED) <= packages
    shipped = (REPO / "pyproject.toml").read_text()
    wheel = shipped[shipped.index("[tool.hatch.build.targets.wheel]") :].splitlines()[1]
    assert wheel == f"packages = {list(PRODUCT)!r}".replace("'", '"')


@pytest.mark.parametrize(
    ("package", "source", "why"),
    [
        ("schemas", "from oncepipe.errors import ConfigError\n", "may import only nothing"),
        ("oncepipe", "def later():\n    import consumers.runtime\n", "may import only ['schemas']"),
        ("producers", "from consumers import offsets\n", "may import only ['oncepipe', 'schemas']"),
        ("consumers", "from cli.shared import state\n", "may import only"),
        ("cli", "from demo.items import HANDLER\n", "may import only"),
        ("consumers", "import tests.fixtures\n", "may import only"),
        ("producers", "import confluent_kafka\n", "only oncepipe/kafka.py may import"),
        ("cli", "from consumers.runtime import ConsumerRuntime\n", "through its package's face"),
        ("demo", "from producers.outbox import enqueue\n", "through its package's face"),
        ("consumers", "from consumers.dlq import DeadLetter\n", "does not import the DLQ tool"),
        ("ingest", "from consumers import EventHandlers\n", "may import only"),
        ("producers", "import ingest\n", "may import only"),
        ("cli", "from ingest.store import accept\n", "through its package's face"),
    ],
)
def test_a_forbidden_edge_is_found(tmp_path: Path, package: str, source: str, why: str) -> None:
    for name in ALLOWED:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / package / "bad.py").write_text(source)
    (found,) = forbidden_edges(tmp_path)
    assert found.startswith(f"{package}/bad.py:")
    assert why in found
