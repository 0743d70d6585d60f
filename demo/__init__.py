"""The demo: the duplicated-click-signals story, naive consumer vs oncepipe (``python -m demo``).

Not part of the product (the wheel ships no demo): it drives the ``oncepipe`` workers as an
operator would, and adds what only a demo needs, an upstream simulator (``python -m demo
simulate``), a naive consumer to compare with, and a catalog handler (``demo.items``).

The command line is ``demo.app``. This package imports nothing, so a worker that loads the
catalog handler (``--handler demo.items:catalog_clicks``) loads only that module.
"""
