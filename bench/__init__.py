"""Side-by-side benchmarks: each oncepipe path next to its baseline, in the same run.

Run everything with ``make bench``; one suite with ``python -m bench --only produce``.
"""
