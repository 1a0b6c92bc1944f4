"""Pieces of `scripts/bench.py`: servers, load generators, probes and the report."""
