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
