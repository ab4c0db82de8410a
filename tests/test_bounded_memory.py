"""Bounded by live work (guarantee 11): however many sagas have run, a runtime keeps only what
its in-flight sagas need. No outcome waiter, no inbox record and no snapshot bytes stay behind
an ended saga, in every mode, in memory and durable, and after a restart; a stuck saga keeps
its inbox records (it can be resumed) until it ends.

These tests count what ``Runtime.footprint()`` reports, not RSS or time (``bench/`` measures
those). Before, every participant kept every inbox record and snapshotted all of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 30.0
BATCH = 250  # sagas in flight at once
SNAPSHOT_BOUND = BATCH * 2 * 300  # bytes: two inbox records of ~100-150 bytes per live saga
NAMES = ("alpha", "beta", "gamma")


class Job(msgspec.Struct, frozen=True):
    n: int
    fail: bool = False


class Receipt(msgspec.Struct, frozen=True):
    key: str


class Added(msgspec.Struct, frozen=True):
    n: int


class Removed(msgspec.Struct, frozen=True):
    n: int


class Tally(msgspec.Struct):
    """Bounded state, so that only the runtime's own keeping could grow."""

    added: int = 0
    removed: int = 0


class Counter(sa.Participant[Tally]):
    """``add`` fails (business) for a failing job on the last step; ``undo`` compensates."""

    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> Tally:
        return Tally()

    @sa.action("add")
    def add(self, ctx: sa.StepContext, job: Job) -> Receipt:
        if job.fail and self.name == NAMES[-1]:
            raise sa.StepFailed("refused")
        ctx.record(Added(job.n))
        return Receipt(ctx.idempotency_key)

    @sa.compensation("add")
    def undo(self, ctx: sa.StepContext, job: Job, done: Receipt) -> None:
        ctx.record(Removed(job.n))

    @sa.on(Job, emits=())  # native choreography: the start event is handled, nothing follows
    def on_job(self, ctx: sa.StepContext, job: Job) -> None:
        ctx.record(Added(job.n))

    @sa.evolve
    def _added(self, state: Tally, change: Added) -> None:
        state.added += 1

    @sa.evolve
    def _removed(self, state: Tally, change: Removed) -> None:
        state.removed += 1


class Done(msgspec.Struct, frozen=True):
    n: int


class Closer(sa.Participant[None]):
    """Native choreography: answers every Job with the terminal Done."""

    name = "closer"

    @sa.on(Job, emits=(Done,))
    def on_job(self, ctx: sa.StepContext, job: Job) -> None:
        ctx.publish(Done(job.n))


SAGA = sa.Saga("counting", [sa.Step(f"{n}-step", participant=n, action="add") for n in NAMES])
FLOW = sa.Choreography("counting-flow", start=Job, completed=(Done,))


def participants() -> list[sa.Participant[Any]]:
    return [*(Counter(n) for n in NAMES), Closer()]


def run_batches(rt: sa.Runtime, mode: str, count: int, first: int = 0) -> None:
    """Run ``count`` sagas, ``BATCH`` at a time; after each batch, check nothing stayed."""
    for start in range(first, first + count, BATCH):
        jobs = [Job(n, fail=n % 7 == 0) for n in range(start, start + BATCH)]
        if mode == "native":
            runs = rt.start_many(FLOW, jobs)
        else:
            runs = rt.start_many(SAGA, jobs, mode=mode)  # type: ignore[arg-type]
        for run in runs:
            assert run.result(WAIT).status.terminal
        assert_bounded(rt)


def assert_bounded(rt: sa.Runtime) -> None:
    """Every saga ended: nothing of them is kept (the last SagaEnded may still be on its way)."""
    deadline = time.monotonic() + WAIT
    while True:
        footprint = rt.footprint()
        if not any(footprint.inbox.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert footprint.sagas == 0, footprint
    assert footprint.waiters == 0, footprint
    assert footprint.inbox == dict.fromkeys([*NAMES, "closer"], 0), footprint
    assert all(size <= SNAPSHOT_BOUND for size in footprint.snapshot_bytes.values()), footprint


@pytest.fixture
def memory_runtime() -> Iterator[sa.Runtime]:
    with sa.Runtime.in_memory(
        participants=participants(), sagas=[SAGA, FLOW], snapshot_every=50
    ) as rt:
        yield rt


@pytest.mark.parametrize(
    ("mode", "count"), [("orchestration", 8000), ("choreography", 6000), ("native", 6000)]
)
def test_twenty_thousand_sagas_leave_nothing_behind_in_memory(
    memory_runtime: sa.Runtime, mode: str, count: int
) -> None:
    run_batches(memory_runtime, mode, count)
    tallies = [memory_runtime.state(n) for n in NAMES]
    assert sum(t.added for t in tallies) >= count  # the work was done, and kept in the state


@pytest.mark.parametrize("mode", ["orchestration", "choreography", "native"])
def test_durable_sagas_leave_nothing_behind_and_a_restart_keeps_it_so(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "bounded.db"
    # No snapshot: a restart folds every record, so its inbox would hold every saga's records.
    with sa.Runtime.open(path, participants=participants(), sagas=[SAGA, FLOW]) as rt:
        run_batches(rt, mode, 1000)
        before = [rt.state(n) for n in NAMES]
    with sa.Runtime.open(path, participants=participants(), sagas=[SAGA, FLOW]) as rt:
        assert rt.footprint().inbox == dict.fromkeys([*NAMES, "closer"], 0)
        assert [rt.state(n) for n in NAMES] == before
        run_batches(rt, mode, 500, first=1000)  # and on it goes, still bounded


def test_a_crash_before_the_participants_heard_of_the_end_leaves_nothing_after_restart() -> None:
    journal = MemoryJournal()
    rt = sa.Runtime.in_memory(journal=journal, participants=participants(), sagas=[SAGA])
    for run in rt.start_many(SAGA, [Job(n) for n in range(200)]):
        run.result(WAIT)
    rt.crash()  # some SagaEnded may never have been handled
    rt.close()
    with sa.Runtime.in_memory(journal=journal, participants=participants(), sagas=[SAGA]) as rt:
        assert rt.footprint().inbox == dict.fromkeys([*NAMES, "closer"], 0)
        assert rt.state("gamma").added == 200


def test_a_stuck_saga_keeps_its_inbox_records_until_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "stuck.db"
    with sa.Runtime.open(path, participants=participants(), sagas=[SAGA]) as rt:
        rt.inject("alpha", "add", sa.Fault("error"), compensation=True)
        stuck = rt.start(SAGA, Job(7, fail=True), saga_id="stuck").result(WAIT)
        assert stuck.status is sa.SagaStatus.STUCK
        # alpha's action record (the resumed undo needs it); beta's action and undo; gamma's
        # refusal: the stuck saga's records stay, those of the sagas that ended go.
        kept = {"alpha": 1, "beta": 2, "gamma": 1, "closer": 0}
        others = rt.start_many(SAGA, [Job(n) for n in range(100)])
        assert all(run.result(WAIT).ok for run in others)
        deadline = time.monotonic() + WAIT
        while rt.footprint().inbox != kept and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rt.footprint().inbox == kept
    with sa.Runtime.open(path, participants=participants(), sagas=[SAGA]) as rt:
        assert rt.footprint().inbox == kept  # a restart keeps them too
        rt.resume("stuck")
        assert rt.run("stuck").result(WAIT).status is sa.SagaStatus.COMPENSATED
        assert rt.state("alpha") == Tally(added=101, removed=1)  # undone once
        assert_bounded(rt)
