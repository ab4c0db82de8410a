"""A slow handler never stalls other participants or the coordinator.

The coordinator and the dispatcher share one scheduler thread; each participant's host has a
thread of its own, unless its class says ``inline = True`` (then it runs on the scheduler).
So a handler that sleeps for a second holds up its own participant only: a saga whose steps
run on other participants starts, runs and ends meanwhile, in memory and on SQLite, whether
those other participants are inline or not.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest

import sagactor as sa

WAIT = 10.0
SLEEP = 1.0


class Job(msgspec.Struct, frozen=True):
    n: int


class Sleepy(sa.Participant[None]):
    """Its handler blocks its thread for a second (a slow API, a lock held elsewhere)."""

    name = "sleepy"

    def __init__(self) -> None:
        self.began = threading.Event()

    def initial_state(self) -> None:
        return None

    @sa.action("nap")
    def nap(self, ctx: sa.StepContext, job: Job) -> int:
        self.began.set()
        time.sleep(SLEEP)
        return job.n

    @sa.compensation("nap")
    def wake(self, ctx: sa.StepContext, job: Job, done: int) -> None:
        pass


class Quick(sa.Participant[None]):
    name = "quick"

    def initial_state(self) -> None:
        return None

    @sa.action("add")
    def add(self, ctx: sa.StepContext, job: Job) -> int:
        return job.n + 1

    @sa.compensation("add")
    def undo(self, ctx: sa.StepContext, job: Job, done: int) -> None:
        pass


class InlineQuick(Quick):
    inline = True  # on the scheduler, beside the coordinator


slow_saga = sa.Saga(
    "slow",
    steps=[sa.Step("nap", participant="sleepy", action="nap")],
    input_type=Job,
)
quick_saga = sa.Saga(
    "quick",
    steps=[
        sa.Step("one", participant="quick", action="add"),
        sa.Step("two", participant="quick", action="add"),
    ],
    input_type=Job,
)


@pytest.mark.parametrize("journal", ["memory", "sqlite"])
@pytest.mark.parametrize("inline", [False, True], ids=["own-thread", "inline"])
def test_a_sleeping_handler_does_not_delay_sagas_on_other_participants(
    journal: str, inline: bool, tmp_path: Path
) -> None:
    sleepy = Sleepy()
    quick = InlineQuick() if inline else Quick()
    participants = [sleepy, quick]
    sagas = [slow_saga, quick_saga]
    with (
        sa.Runtime.in_memory(participants=participants, sagas=sagas)
        if journal == "memory"
        else sa.Runtime.open(tmp_path / "j.db", participants=participants, sagas=sagas)
    ) as rt:
        slow = rt.start(slow_saga, Job(1))
        assert sleepy.began.wait(WAIT)
        began = time.monotonic()
        quick_runs = [rt.start(quick_saga, Job(n)) for n in range(5)]
        outcomes = [run.result(WAIT) for run in quick_runs]
        took = time.monotonic() - began
        assert [o.status for o in outcomes] == [sa.SagaStatus.COMPLETED] * 5
        assert took < SLEEP / 2, f"the quick sagas waited {took:.2f}s behind the sleeping one"
        assert slow.status.status is sa.SagaStatus.RUNNING  # still asleep meanwhile
        assert slow.result(WAIT).status is sa.SagaStatus.COMPLETED
