"""What a saga in flight costs stays small without changing what callers see.

* every ``run.add_done_callback`` of a saga gets its outcome once, in the order given, however
  many there are, and one that raises does not stop the others;
* a saga that fails, compensates or runs a parallel group reports the same outcome and the
  same ``sagas`` row as before, though its containers are made on first use;
* the ``sagas`` table's upkeep keeps one object per saga in flight and none once it ended.
"""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import pytest

import sagactor as sa

WAIT = 10.0


class Job(msgspec.Struct, frozen=True):
    n: int
    fail: bool = False


class Desk(sa.Participant[list[int]]):
    name = "desk"

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate

    def initial_state(self) -> list[int]:
        return []

    @sa.action("book")
    def book(self, ctx: sa.StepContext, job: Job) -> int:
        if self.gate is not None:
            self.gate.wait(WAIT)
        ctx.record(job.n)
        return job.n

    @sa.compensation("book")
    def unbook(self, ctx: sa.StepContext, job: Job, done: int) -> None:
        ctx.record(-done)

    @sa.action("check")
    def check(self, ctx: sa.StepContext, job: Job) -> int:
        if job.fail:
            raise sa.StepFailed("no")
        return job.n + 1

    @sa.evolve
    def _booked(self, state: list[int], n: int) -> None:
        state.append(n)


SAGA = sa.Saga(
    "lean",
    [
        sa.Step("book", participant="desk", action="book"),
        sa.Step("check", participant="desk", action="check", compensable=False),
    ],
    input_type=Job,
)


def test_every_done_callback_gets_the_outcome_once_in_order() -> None:
    gate = threading.Event()
    with sa.Runtime.in_memory(participants=[Desk(gate)], sagas=[SAGA]) as rt:
        run = rt.start(SAGA, Job(3))
        seen: list[tuple[str, sa.SagaStatus]] = []

        def failing(outcome: sa.Outcome) -> None:
            seen.append(("failing", outcome.status))
            raise RuntimeError("a caller's bug")

        run.add_done_callback(lambda o: seen.append(("first", o.status)))
        run.add_done_callback(failing)
        third = threading.Event()

        def last(outcome: sa.Outcome) -> None:
            seen.append(("third", outcome.status))
            third.set()

        run.add_done_callback(last)
        assert seen == []  # held at its first step
        gate.set()
        outcome = run.result(WAIT)
        assert third.wait(WAIT)
        run.add_done_callback(lambda o: seen.append(("late", o.status)))  # ended: at once
    done = sa.SagaStatus.COMPLETED
    assert outcome.results == {"book": 3, "check": 4}
    assert seen == [("first", done), ("failing", done), ("third", done), ("late", done)]


@pytest.mark.parametrize("fail", [False, True])
def test_outcome_and_row_of_a_saga_that_completes_or_compensates(
    tmp_path: Path, fail: bool
) -> None:
    with sa.Runtime.open(tmp_path / "lean.db", participants=[Desk()], sagas=[SAGA]) as rt:
        run = rt.start(SAGA, Job(5, fail=fail))
        outcome = run.result(WAIT)
        row = rt.list(limit=1).rows[0]
        state = rt.state("desk")
    if fail:
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.compensated == ("book",)
        assert (row.status, row.step, row.result) == ("compensated", "book", '{"book":5}')
        assert state == [5, -5]
    else:
        assert outcome.status is sa.SagaStatus.COMPLETED
        assert (row.status, row.step, row.result) == ("completed", "check", '{"book":5,"check":6}')
        assert state == [5]
    given = f'{{"n":5,"fail":{str(fail).lower()}}}'
    assert (row.id, row.type, row.input) == (run.id, "lean", given)


def test_the_sagas_row_upkeep_forgets_ended_sagas(tmp_path: Path) -> None:
    gate = threading.Event()
    rt = sa.Runtime.open(tmp_path / "lean.db", participants=[Desk(gate)], sagas=[SAGA])
    try:
        runs = rt.start_many(SAGA, [Job(i) for i in range(20)])
        keeper = rt.engine.journal._writer.summaries  # type: ignore[attr-defined]
        assert len(keeper._tracked) == 20  # one per saga in flight
        assert {row.status for row in rt.list(limit=50).rows} == {"running"}
        gate.set()
        assert all(run.result(WAIT).ok for run in runs)
        assert len(keeper._tracked) == 0
    finally:
        gate.set()
        rt.close()
