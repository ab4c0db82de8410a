"""Benchmark scripts: each prints its figures; ``bench/run.py`` runs them all."""
