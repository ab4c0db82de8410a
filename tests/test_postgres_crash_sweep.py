"""The crash sweep of ``test_crash_sweep`` on PostgreSQL: a crash at every crash point, at
every pass through it, then a new runtime recovers from the same journal and every guarantee
holds. Each case gets a journal of its own (a PostgreSQL schema of the test's database)."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest

import sagactor as sa
from sagactor.persistence.postgres import PostgresJournal
from sagactor.testing import CrashCase, crash_and_recover, crash_cases

from .chain import MODES, chain_saga, ledgers, violations
from .test_crash_sweep import Disk, _points, _workload


class PostgresDisk:
    """Where a crashed runtime's journal survives: a schema of the test's database."""

    _numbers = itertools.count()

    def __init__(self, url: str) -> None:
        self.url = url
        self.schema = f"case{next(self._numbers)}"

    def journal(self) -> PostgresJournal:
        return PostgresJournal(self.url, schema=self.schema, synchronous="normal", pool_size=2)

    def open(self, saga: sa.Saga, steps: int, **options: Any) -> sa.Runtime:
        return sa.Runtime(self.journal(), participants=ledgers(steps), sagas=[saga], **options)

    def in_flight(self) -> int:
        with self.journal() as journal:
            return len(journal.open_streams("saga/"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
def test_every_crash_point_and_pass(mode: sa.Mode, steps: int, pg_url: str, tmp_path: Any) -> None:
    saga = chain_saga(steps)

    def workload(rt: sa.Runtime) -> list[str]:
        return _workload(rt, saga, mode, steps)

    dry = Disk("memory", tmp_path)
    cases = crash_cases(functools.partial(dry.open, saga, steps), workload, _points(mode))
    for case in cases:
        disk = PostgresDisk(pg_url)
        acknowledged, recovered = crash_and_recover(
            functools.partial(disk.open, saga, steps), workload, case
        )
        with recovered as rt:
            problems = violations(rt, acknowledged, steps)
        assert problems == [], f"{mode}, {case.point} pass {case.hit}: {problems}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", [2, 5])
def test_crash_during_recovery(mode: sa.Mode, steps: int, pg_url: str) -> None:
    saga = chain_saga(steps)
    disk = PostgresDisk(pg_url)
    acknowledged, recovered = crash_and_recover(
        functools.partial(disk.open, saga, steps, recover=False),
        lambda rt: _workload(rt, saga, mode, steps),
        CrashCase(sa.CrashPoint.AFTER_COMMIT, 3),
    )
    recovered.close()
    in_flight = disk.in_flight()
    assert in_flight > 0
    assert acknowledged
    for hit in range(1, in_flight + 1):
        with disk.open(saga, steps, recover=False) as rt:
            rt.arm(sa.CrashPoint.MID_RECOVERY, hit)
            with pytest.raises(sa.RuntimeCrashed):
                rt.recover()
    with disk.open(saga, steps) as rt:
        assert violations(rt, acknowledged, steps) == []
