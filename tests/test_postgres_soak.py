"""The multi-process kill soak, small enough for CI: 3 workers sharing one PostgreSQL
database's partitions, 10 SIGKILLs (``make soak-pg`` runs 100): every acknowledged saga ends,
no effect is applied twice, stock and money balance in every partition."""

from __future__ import annotations

import pytest

from .soak_pg import soak


@pytest.mark.timeout(600)
def test_ten_kills_of_three_workers_lose_nothing_and_apply_nothing_twice(pg_url: str) -> None:
    report = soak(pg_url, 10, seed=16, log=lambda line: None)
    assert report.violations == []
    assert report.kills == 10
    assert report.acknowledged > 100
