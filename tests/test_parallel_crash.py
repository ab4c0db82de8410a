"""A crash at every crash point, at every pass, over sagas with a parallel group; then recovery.

The saga is the ledger chain of ``tests/chain.py`` with its middle steps in a group:
``s0``, then ``s1 | s2 | s3`` at once, then ``s4``. Jobs complete, fail in the middle of the
group (its siblings are compensated, then ``s0``), fail before it and after it. A dry run
counts how often each point is passed; one run per (point, pass) dies there, a new runtime
recovers from the same journal (in memory and SQLite), and every guarantee must hold: each
effect applied at most once, a completed saga's effects all standing, a compensated saga's
all undone, compensations by stage from the last one back (within the group, any order).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import sagactor as sa
from sagactor.messages import StepCompensated
from sagactor.testing import crash_and_recover, crash_cases

from .chain import MODES, Job
from .test_crash_sweep import Disk, _points

STEPS = 5


def grouped_saga() -> sa.Saga:
    def step(i: int) -> sa.Step:
        return sa.Step(f"s{i}", f"p{i}", "do", retry=sa.RetryPolicy(backoff=0.001))

    return sa.Saga(
        "grouped", [step(0), sa.Parallel([step(1), step(2), step(3)]), step(4)], input_type=Job
    )


SAGA = grouped_saga()
JOBS = [Job("ok"), Job("middle", fail_at="s2"), Job("early", fail_at="s0"), Job("late", "s4")]


def _workload(rt: sa.Runtime, mode: sa.Mode) -> list[str]:
    acknowledged = []
    for job in JOBS:
        try:
            acknowledged.append(rt.start(SAGA, job, saga_id=job.id, mode=mode).id)
        except sa.RuntimeCrashed:
            break
    return acknowledged


def grouped_violations(rt: sa.Runtime, saga: sa.Saga, saga_ids: list[str]) -> list[str]:
    """Every broken guarantee for sagas of ``saga`` over ledgers ``p<i>`` running ``s<i>``."""
    problems = []
    names = [s.name for s in saga.steps]
    for saga_id in saga_ids:
        outcome = rt.run(saga_id).result(10)
        states = {n: rt.state(saga.step(n).participant) for n in names}
        if outcome.status not in (sa.SagaStatus.COMPLETED, sa.SagaStatus.COMPENSATED):
            problems.append(f"{saga_id} ended {outcome.status}: {outcome.reason}")
        for name in names:
            key = f"{saga_id}/{name}"
            applied = states[name].applied.get(key, 0)
            undone = states[name].undone.get(key, 0)
            if applied > 1 or undone > 1:
                problems.append(f"{key} applied {applied}x, undone {undone}x")
            if outcome.status is sa.SagaStatus.COMPLETED and (applied, undone) != (1, 0):
                problems.append(f"{key} of a completed saga: applied {applied}, undone {undone}")
            if outcome.status is sa.SagaStatus.COMPENSATED and undone != applied:
                problems.append(f"{key} of a compensated saga: applied {applied}, undone {undone}")
        stages = [
            saga.stage(e.event.step)
            for e in rt.history(saga_id)
            if isinstance(e.event, StepCompensated)
        ]
        if stages != sorted(stages, reverse=True):
            problems.append(f"{saga_id} compensated out of stage order: {stages}")
    return problems


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
def test_every_crash_point_and_pass_over_a_group(kind: str, mode: sa.Mode, tmp_path: Path) -> None:
    def workload(rt: sa.Runtime) -> list[str]:
        return _workload(rt, mode)

    dry = Disk("memory", tmp_path)
    cases = crash_cases(functools.partial(dry.open, SAGA, STEPS), workload, _points(mode))
    assert len(cases) > 10
    for case in cases:
        disk = Disk(kind, tmp_path)
        acknowledged, recovered = crash_and_recover(
            functools.partial(disk.open, SAGA, STEPS), workload, case
        )
        with recovered as rt:
            problems = grouped_violations(rt, SAGA, acknowledged)
        assert problems == [], f"{mode}, {case.point} pass {case.hit}: {problems}"


@pytest.mark.parametrize("mode", MODES)
def test_the_outcomes_without_a_crash(mode: sa.Mode, tmp_path: Path) -> None:
    """The sweep's jobs end as designed (so the sweep checks the shapes it means to)."""
    disk = Disk("memory", tmp_path)
    with disk.open(SAGA, STEPS) as rt:
        ids = _workload(rt, mode)
        outcomes = {i: rt.run(i).result(10) for i in ids}
        assert grouped_violations(rt, SAGA, ids) == []
    assert outcomes["ok"].status is sa.SagaStatus.COMPLETED
    middle = outcomes["middle"]
    assert middle.status is sa.SagaStatus.COMPENSATED
    assert set(middle.compensated[:2]) == {"s1", "s3"}
    assert middle.compensated[2:] == ("s0",)
    assert outcomes["early"].compensated == ()
    assert set(outcomes["late"].compensated[:3]) == {"s1", "s2", "s3"}
