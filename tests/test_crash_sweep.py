"""Crash at every crash point, at every pass through it, then recover: every guarantee holds.

For chains of 1 to 5 steps and both modes, a dry run counts how often each point is passed;
then one run per (point, pass) dies there, a new runtime recovers from the same journal, and
the invariants are checked. A point the workload never passes fails the sweep.
"""

from __future__ import annotations

import functools
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.testing import CrashCase, crash_and_recover, crash_cases

from .chain import MODES, Job, chain_saga, ledgers, violations


def _jobs(steps: int) -> list[Job]:
    jobs = [Job("ok")]
    if steps > 1:
        jobs.append(Job("late", fail_at=f"s{steps - 1}"))
    jobs.append(Job("early", fail_at="s0"))
    return jobs


def _workload(rt: sa.Runtime, saga: sa.Saga, mode: sa.Mode, steps: int) -> list[str]:
    """Start the jobs one by one; the ids whose start returned (acknowledged)."""
    acknowledged = []
    for job in _jobs(steps):
        try:
            acknowledged.append(rt.start(saga, job, saga_id=job.id, mode=mode).id)
        except sa.RuntimeCrashed:
            break
    return acknowledged


def _points(mode: sa.Mode) -> list[sa.CrashPoint]:
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY]
    if mode == "choreography":
        points.append(sa.CrashPoint.BEFORE_DISPATCH)
    return points


class Disk:
    """Where a crashed runtime's journal survives: a MemoryJournal object, or a SQLite file."""

    _names = itertools.count()

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.memory = MemoryJournal()
        self.path = tmp_path / f"journal{next(self._names)}.db"

    def open(self, saga: sa.Saga, steps: int, **options: Any) -> sa.Runtime:
        journal = (
            self.memory if self.kind == "memory" else SqliteJournal(self.path, synchronous="normal")
        )
        return sa.Runtime(journal, participants=ledgers(steps), sagas=[saga], **options)

    def in_flight(self) -> int:
        if self.kind == "memory":
            return len(self.memory.open_streams("saga/"))
        with SqliteJournal(self.path) as journal:
            return len(journal.open_streams("saga/"))


def _died_early(disk: Disk, saga: sa.Saga, mode: sa.Mode, steps: int) -> list[str]:
    """Die early in the run, so sagas are still in flight; the ids acknowledged."""
    acknowledged, recovered = crash_and_recover(
        functools.partial(disk.open, saga, steps, recover=False),
        lambda rt: _workload(rt, saga, mode, steps),
        CrashCase(sa.CrashPoint.AFTER_COMMIT, 3),
    )
    recovered.close()
    return acknowledged


def _sweep(kind: str, mode: sa.Mode, steps: int, tmp_path: Path, **reopen: Any) -> None:
    """Every (point, pass) of the workload: die there, reopen (with ``reopen``'s options),
    check every guarantee once the acknowledged sagas ended."""
    saga = chain_saga(steps)

    def workload(rt: sa.Runtime) -> list[str]:
        return _workload(rt, saga, mode, steps)

    dry = Disk("memory", tmp_path)
    cases = crash_cases(functools.partial(dry.open, saga, steps), workload, _points(mode))
    for case in cases:
        disk = Disk(kind, tmp_path)
        acknowledged, recovered = crash_and_recover(
            functools.partial(disk.open, saga, steps, **reopen), workload, case
        )
        with recovered as rt:
            problems = violations(rt, acknowledged, steps)
            rt.wait_recovered(timeout=10)
        assert problems == [], f"{mode}, {case.point} pass {case.hit}: {problems}"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
def test_every_crash_point_and_pass(kind: str, mode: sa.Mode, steps: int, tmp_path: Path) -> None:
    _sweep(kind, mode, steps, tmp_path)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", [2, 5])
def test_crash_during_recovery(kind: str, mode: sa.Mode, steps: int, tmp_path: Path) -> None:
    saga = chain_saga(steps)
    disk = Disk(kind, tmp_path)
    acknowledged = _died_early(disk, saga, mode, steps)
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


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("steps", [2, 4])
def test_every_crash_point_recovered_in_the_background(
    kind: str, mode: sa.Mode, steps: int, tmp_path: Path
) -> None:
    """The sweep again, each reopen with ``recover="background"``: the invariants are read
    while (and after) the recovery thread resumes the sagas."""
    _sweep(kind, mode, steps, tmp_path, recover="background")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
def test_crashes_during_background_recoveries(kind: str, mode: sa.Mode, tmp_path: Path) -> None:
    """Crash a runtime again and again while its background recovery runs (at once, and a
    little later each time); then every guarantee holds."""
    steps = 3
    saga = chain_saga(steps)
    disk = Disk(kind, tmp_path)
    acknowledged = _died_early(disk, saga, mode, steps)
    assert disk.in_flight() > 0
    for delay in (0.0, 0.0005, 0.001, 0.002, 0.005, 0.01):
        rt = disk.open(saga, steps, recover="background")
        time.sleep(delay)
        rt.crash()
        rt.close()
    with disk.open(saga, steps) as rt:
        assert violations(rt, acknowledged, steps) == []
