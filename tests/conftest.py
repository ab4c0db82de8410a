"""Shared test setup: hypothesis profiles (``dev`` by default, ``ci`` in CI)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The PostgreSQL tests' fixtures (a throwaway cluster per session, a database per test).
from .pg import pg_class_url, pg_cluster, pg_url  # noqa: E402, F401
