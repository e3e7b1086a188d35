"""Benchmarks for issue #7: run with ``make bench``; not part of the package.

Each ``bench_*.py`` is a module (``python -m benchmarks.bench_plan``) that prints its
figures and the machine's core count; generated data goes to ``benchmarks/data/``.
"""
