"""Benchmarks: ``python -m bench.bench_<area>`` measures one area, prints a Markdown table and writes
``bench/results/<area>_<device>.json``. Speed lives here, never in timed test assertions."""
