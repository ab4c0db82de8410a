"""The kill -9 soak, small enough for CI: 50 SIGKILLs of a child running shop sagas."""

from __future__ import annotations

from pathlib import Path

import pytest

from .soak import soak


@pytest.mark.timeout(600)
def test_fifty_kills_lose_nothing_and_apply_nothing_twice(tmp_path: Path) -> None:
    report = soak(50, seed=7, db=tmp_path / "soak.db")
    assert report.kills == 50
    assert report.acknowledged > 0
    assert report.violations == []


@pytest.mark.timeout(600)
def test_kills_while_recovering_in_the_background_lose_nothing(tmp_path: Path) -> None:
    """Each child opens with ``recover="background"``: it starts new sagas at once, while the
    last kill's sagas are still being recovered, and is often killed in the middle of that."""
    report = soak(30, seed=11, db=tmp_path / "soak.db", background=True)
    assert report.kills == 30
    assert report.acknowledged > 0
    assert report.violations == []
