"""Benchmark harness: `nox -s bench` (see bench/README.md)."""
