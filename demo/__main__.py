"""``python -m demo``: the demo's command line (``--help`` lists the story's options)."""

from __future__ import annotations

from cli import run_app
from demo.app import demo_app

run_app(demo_app)
