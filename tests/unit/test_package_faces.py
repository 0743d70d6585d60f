"""Each product package's face: its ``__all__`` names exist, and it imports on its own.

Imports are checked in a fresh interpreter each, so a cycle (a package that only imports
because another one happened to be loaded first) fails here, and so does a face that pulls in
more than it should: the bare plumbing package and the command line must stay light (the
console script guards its start-up before anything heavy loads), and the consumer core must
not load the dead-letter tool.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import consumers

PACKAGES = [
    "schemas",
    "oncepipe",
    "producers",
    "consumers",
    "consumers.dlq",
    "consumers.handlers",
    "cli",
]
HEAVY = ("confluent_kafka", "psycopg", "pydantic", "typer", "structlog", "fastavro")


def modules_loaded_by(module: str) -> list[str]:
    """The modules a fresh interpreter has loaded after ``import <module>``."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"import {module} failed on its own:\n{done.stderr}"
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_exists(package: str) -> None:
    module = importlib.import_module(package)
    names = module.__all__
    assert len(names) == len(set(names)), f"{package}.__all__ repeats a name"
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not offer: {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_docstring_says_what_the_package_offers(package: str) -> None:
    doc = importlib.import_module(package).__doc__ or ""
    # More than "<name> package.": a summary line and at least one paragraph below it.
    assert len(doc.strip().splitlines()) >= 3, f"{package} has no docstring worth the name"


@pytest.mark.parametrize("package", [*PACKAGES, "cli.main", "cli.entry"])
def test_imports_alone(package: str) -> None:
    assert package in modules_loaded_by(package)


@pytest.mark.parametrize("package", ["oncepipe", "cli", "cli.entry"])
def test_stays_light(package: str) -> None:
    loaded = modules_loaded_by(package)
    heavy = [name for name in HEAVY if name in loaded]
    assert not heavy, f"import {package} loads {heavy}"


def test_consumer_core_does_not_load_the_dead_letter_tool() -> None:
    core = sorted(path.stem for path in Path(consumers.__file__).parent.glob("*.py"))
    loaded = modules_loaded_by(", ".join(f"consumers.{name}" for name in core))
    assert not [name for name in loaded if name.startswith("consumers.dlq")]


def test_schemas_loads_nothing_of_ours() -> None:
    ours = ("oncepipe", "producers", "consumers", "cli")
    loaded = modules_loaded_by("schemas")
    assert not [name for name in loaded if name.split(".")[0] in ours]
