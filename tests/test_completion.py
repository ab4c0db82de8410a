"""Learning how a saga ended, cheaply: callbacks, starts that do not wait, no journal reads.

* ``run.add_done_callback(fn)`` calls ``fn(outcome)`` once the saga ends, on a runtime thread,
  or at once if it ended already (also for a handle made later with ``rt.run(id)``);
* ``rt.start_nowait`` returns before the start is journaled; a start that cannot be journaled
  raises from ``run.result()``; ``start_many`` hands back runs whose outcomes come as usual;
* ``run.result()`` of a saga this runtime started reads nothing from the journal;
* the garbage collector is tuned once a runtime has started, unless ``SAGACTOR_TUNE_GC=0``.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence

import anyio
import msgspec
import pytest

import sagactor as sa
from sagactor.errors import JournalWriteError
from sagactor.persistence.journal import Record
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


class Job(msgspec.Struct, frozen=True):
    n: int
    fail: bool = False


class Worker(sa.Participant[None]):
    name = "worker"

    def initial_state(self) -> None:
        return None

    @sa.action("work")
    def work(self, ctx: sa.StepContext, job: Job) -> int:
        if job.fail:
            raise sa.StepFailed("refused")
        return job.n * 2

    @sa.compensation("work")
    def undo(self, ctx: sa.StepContext, job: Job, done: int) -> None:
        pass


SAGA = sa.Saga("job", [sa.Step("work", participant="worker", action="work")], input_type=Job)


class CountingReads(MemoryJournal):
    """Counts the reads of saga streams (what a caller waiting for an outcome might do)."""

    def __init__(self) -> None:
        super().__init__()
        self.saga_reads = 0

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        if stream.startswith("saga/"):
            self.saga_reads += 1
        return super().read(stream, after, limit)

    def last_seq(self, stream: str) -> int:
        if stream.startswith("saga/"):
            self.saga_reads += 1
        return super().last_seq(stream)


@pytest.fixture
def rt() -> Iterator[sa.Runtime]:
    with sa.Runtime.in_memory(participants=[Worker()], sagas=[SAGA]) as runtime:
        yield runtime


def test_done_callback_gets_the_outcome_on_a_runtime_thread(rt: sa.Runtime) -> None:
    got: list[tuple[sa.Outcome, str]] = []
    called = threading.Event()

    def note(outcome: sa.Outcome) -> None:
        got.append((outcome, threading.current_thread().name))
        called.set()

    run = rt.start_nowait(SAGA, Job(21))
    run.add_done_callback(note)
    assert called.wait(WAIT)
    ((outcome, thread),) = got
    assert outcome.status is sa.SagaStatus.COMPLETED
    assert outcome.results == {"work": 42}
    assert thread != threading.current_thread().name
    assert run.result(WAIT) == outcome


@pytest.mark.parametrize("later_handle", [False, True], ids=["same-handle", "rt.run"])
def test_done_callback_of_an_ended_saga_runs_at_once(rt: sa.Runtime, later_handle: bool) -> None:
    run = rt.start(SAGA, Job(1, fail=True))
    ended = run.result(WAIT)
    assert ended.status is sa.SagaStatus.COMPENSATED
    handle = rt.run(run.id) if later_handle else run
    got: list[sa.Outcome] = []
    handle.add_done_callback(got.append)
    assert got == [ended]  # called before add_done_callback returned
    assert rt.footprint().waiters == 0


def test_one_thread_drives_many_sagas_with_callbacks(rt: sa.Runtime) -> None:
    done = threading.Semaphore(0)
    outcomes: list[sa.Outcome] = []

    def finished(outcome: sa.Outcome) -> None:
        outcomes.append(outcome)
        done.release()

    for n in range(200):
        rt.start_nowait(SAGA, Job(n)).add_done_callback(finished)
    for _ in range(200):
        assert done.acquire(timeout=WAIT)
    assert sorted(o.results["work"] for o in outcomes) == [2 * n for n in range(200)]


def test_a_done_callback_may_close_the_runtime() -> None:
    rt = sa.Runtime.in_memory(participants=[Worker()], sagas=[SAGA])
    closed = threading.Event()

    def close(outcome: sa.Outcome) -> None:
        rt.close()
        closed.set()

    rt.start_nowait(SAGA, Job(1)).add_done_callback(close)
    assert closed.wait(WAIT)
    assert wait_closed(rt)


def wait_closed(rt: sa.Runtime) -> bool:
    for _ in range(int(WAIT / 0.01)):
        try:
            rt.start(SAGA, Job(2))
        except sa.RuntimeClosed:
            return True
        threading.Event().wait(0.01)
    return False


def test_start_many_returns_journaled_runs(rt: sa.Runtime) -> None:
    runs = rt.start_many(SAGA, [Job(n) for n in range(50)])
    assert len({run.id for run in runs}) == 50
    assert all(rt.status(run.id).saga == "job" for run in runs)  # journaled on return
    assert [run.result(WAIT).results["work"] for run in runs] == [2 * n for n in range(50)]


def test_a_start_that_cannot_be_journaled_raises_from_result() -> None:
    journal = MemoryJournal()

    def disk_full(records: Sequence[Record]) -> None:
        if any(r.type == "SagaStarted" for r in records):
            raise OSError("disk full")

    with sa.Runtime.in_memory(journal=journal, participants=[Worker()], sagas=[SAGA]) as rt:
        journal.fault = disk_full
        run = rt.start_nowait(SAGA, Job(1))
        with pytest.raises(JournalWriteError):
            run.result(WAIT)
        with pytest.raises(JournalWriteError):
            rt.start(SAGA, Job(2))
        assert rt.footprint().waiters == 0


def test_result_of_a_saga_started_here_reads_nothing_from_the_journal() -> None:
    journal = CountingReads()
    with sa.Runtime.in_memory(journal=journal, participants=[Worker()], sagas=[SAGA]) as rt:
        runs = rt.start_many(SAGA, [Job(n) for n in range(20)])
        runs.append(rt.start(SAGA, Job(99, fail=True)))
        before = journal.saga_reads
        outcomes = [run.result(WAIT) for run in runs]
        assert journal.saga_reads == before
        assert outcomes[-1].status is sa.SagaStatus.COMPENSATED
        rt.run(runs[0].id).result(WAIT)  # a handle made later does read it (once)
        assert journal.saga_reads > before


def test_awaiting_a_saga_started_here_reads_nothing_from_the_journal() -> None:
    journal = CountingReads()
    with sa.Runtime.in_memory(journal=journal, participants=[Worker()], sagas=[SAGA]) as rt:
        runs = [rt.start_nowait(SAGA, Job(n)) for n in range(5)]
        before = journal.saga_reads

        async def await_all() -> list[sa.Outcome]:
            return [await runs[0], *[await run.wait(WAIT) for run in runs[1:]]]

        outcomes = anyio.run(await_all)
        assert journal.saga_reads == before
        assert [o.results["work"] for o in outcomes] == [0, 2, 4, 6, 8]


@pytest.fixture
def python_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.set_threshold(700, *threshold[1:])
    gc.unfreeze()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


@pytest.mark.usefixtures("python_gc")
def test_the_collector_is_tuned_after_start_up() -> None:
    with sa.Runtime.in_memory(participants=[Worker()], sagas=[SAGA]):
        assert gc.get_threshold()[0] == 50_000
        assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("python_gc")
def test_sagactor_tune_gc_0_keeps_pythons_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGACTOR_TUNE_GC", "0")
    with sa.Runtime.in_memory(participants=[Worker()], sagas=[SAGA]):
        assert gc.get_threshold()[0] == 700
        assert gc.get_freeze_count() == 0
