"""Durable timers (``sa.Sleep``) and signals (``sa.WaitFor`` + ``Runtime.signal``).

A sleep's due time and a wait's timeout are journaled when the step is reached, so a restart
re-arms the same wall-clock time; a signal is journaled in the saga's stream, once per id,
and kept until a wait for it is reached.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import anyio
import msgspec
import pytest

import sagactor as sa
from sagactor.messages import SignalReceived, SleepStarted, WaitStarted

from .chain import MODES


class Approval(msgspec.Struct, frozen=True):
    by: str
    amount: int


class Ledger(msgspec.Struct):
    held: list[str] = []
    released: list[str] = []
    charged: list[str] = []
    approvals: list[str] = []


class Noted(msgspec.Struct, frozen=True):
    what: str  # a field of Ledger
    text: str


class Bank(sa.Participant[Ledger]):
    """Holds money, then charges it with whoever approved it (read from ``ctx.results``)."""

    name = "bank"

    def initial_state(self) -> Ledger:
        return Ledger()

    @sa.action("hold")
    def hold(self, ctx: sa.StepContext, order: str) -> str:
        ctx.record(Noted("held", order))
        return order

    @sa.compensation("hold")
    def release(self, ctx: sa.StepContext, order: str, done: str) -> None:
        ctx.record(Noted("released", order))

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, order: str) -> str:
        approval = ctx.results.get("approval")
        if isinstance(approval, Approval):
            ctx.record(Noted("approvals", f"{approval.by}:{approval.amount}"))
        ctx.record(Noted("charged", order))
        return order

    @sa.compensation("charge")
    def refund(self, ctx: sa.StepContext, order: str, done: str) -> None: ...

    @sa.evolve
    def _noted(self, state: Ledger, change: Noted) -> None:
        getattr(state, change.what).append(change.text)


def sleepy(seconds: float) -> sa.Saga:
    return sa.Saga(
        "sleepy",
        [
            sa.Step("hold", "bank", "hold"),
            sa.Sleep("cool_off", seconds),
            sa.Step("charge", "bank", "charge"),
        ],
        input_type=str,
    )


def approving(timeout: float | None = None) -> sa.Saga:
    return sa.Saga(
        "approving",
        [
            sa.Step("hold", "bank", "hold"),
            sa.WaitFor("approval", timeout=timeout, type=Approval),
            sa.Step("charge", "bank", "charge"),
        ],
        input_type=str,
    )


def _rt(*sagas: sa.Saga) -> sa.Runtime:
    return sa.Runtime.in_memory(participants=[Bank()], sagas=list(sagas))


# -- sleep -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_sleep_waits_its_time_then_the_saga_goes_on(mode: sa.Mode) -> None:
    with _rt(sleepy(0.4)) as rt:
        began = time.time()
        run = rt.start("sleepy", "o1", saga_id="s1", mode=mode)
        time.sleep(0.15)
        status = rt.status("s1")
        assert status.status is sa.SagaStatus.RUNNING
        assert status.reason.startswith("sleeping until "), status.reason
        outcome = run.result(5)
        took = time.time() - began
        assert outcome.ok
        assert outcome.results["cool_off"] is None
        assert 0.4 <= took < 1.5, took
        sleeps = [e.event for e in rt.history("s1") if isinstance(e.event, SleepStarted)]
        assert len(sleeps) == 1
        assert sleeps[0].due - began == pytest.approx(0.4, abs=0.2)


def test_sleep_until_a_wall_clock_time() -> None:
    due = time.time() + 0.3
    saga = sa.Saga("until", [sa.Step("hold", "bank", "hold"), sa.Sleep("nap", until=due)])
    with _rt(saga) as rt:
        assert rt.start(saga, "o1").result(5).ok
        assert time.time() >= due


@pytest.mark.parametrize("mode", MODES)
def test_a_restart_does_not_restart_the_sleep(mode: sa.Mode, tmp_path: Path) -> None:
    """Crash mid-sleep, stay down, reopen: it wakes at the journaled due time, not later."""
    path = tmp_path / "sleep.db"
    rt = sa.Runtime.open(path, participants=[Bank()], sagas=[sleepy(1.0)])
    began = time.time()
    rt.start("sleepy", "o1", saga_id="s1", mode=mode)
    time.sleep(0.3)
    rt.crash()
    rt.close()
    time.sleep(0.3)
    with sa.Runtime.open(path, participants=[Bank()], sagas=[sleepy(1.0)]) as again:
        assert again.run("s1").result(5).ok
        woke = time.time() - began
        ledger: Ledger = again.state("bank")
        assert ledger.charged == ["o1"]
    assert 1.0 <= woke < 1.4, woke


def test_many_sleeping_sagas_cost_no_thread_each() -> None:
    with _rt(sleepy(2.0)) as rt:  # long enough that the first are still asleep under load
        threads = threading.active_count()
        runs = rt.start_many("sleepy", [f"o{i}" for i in range(1000)])
        _until(lambda: rt.status(runs[-1].id).reason.startswith("sleeping"))
        asleep = sum(rt.status(r.id).reason.startswith("sleeping") for r in runs[::50])
        assert asleep == 20
        assert threading.active_count() <= threads + 2
        for run in runs:
            assert run.result(20).ok


@pytest.mark.parametrize("bad", [{}, {"seconds": 1, "until": 2}, {"seconds": -1}])
def test_sleep_needs_one_time(bad: dict[str, float]) -> None:
    with pytest.raises(sa.DefinitionError):
        sa.Sleep("nap", **bad)


def test_a_sleep_cannot_join_a_parallel_group() -> None:
    with pytest.raises(sa.DefinitionError, match="parallel group"):
        sa.Parallel([sa.Step("a", "bank", "hold"), sa.Sleep("nap", 1)])


# -- signals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_signal_after_the_wait_is_reached_moves_the_saga_on(mode: sa.Mode) -> None:
    with _rt(approving()) as rt:
        run = rt.start("approving", "o1", saga_id="s1", mode=mode)
        _until(lambda: rt.status("s1").reason == "waiting for 'approval'")
        assert rt.signal("s1", "approval", Approval("ann", 5), signal_id="a1") is True
        outcome = run.result(5)
        assert outcome.ok
        assert outcome.results["approval"] == Approval("ann", 5)
        ledger: Ledger = rt.state("bank")
        assert ledger.approvals == ["ann:5"]


@pytest.mark.parametrize("mode", MODES)
def test_a_signal_before_the_wait_is_kept_for_it(mode: sa.Mode) -> None:
    saga = sa.Saga(
        "late_wait",
        [
            sa.Step("hold", "bank", "hold"),
            sa.Sleep("first", 0.3),
            sa.WaitFor("approval", type=Approval),
            sa.Step("charge", "bank", "charge"),
        ],
        input_type=str,
    )
    with _rt(saga) as rt:
        run = rt.start(saga, "o1", saga_id="s1", mode=mode)
        assert rt.signal("s1", "approval", Approval("bob", 7)) is True
        outcome = run.result(5)
        assert outcome.ok
        ledger: Ledger = rt.state("bank")
        assert ledger.approvals == ["bob:7"]
        kinds = [type(e.event).__name__ for e in rt.history("s1")]
        assert "WaitStarted" not in kinds  # the kept signal was consumed on arrival
        assert kinds.index("SignalReceived") < kinds.index("SleepStarted") + 2


def test_a_duplicate_signal_id_is_ignored_and_reported() -> None:
    with _rt(approving()) as rt:
        run = rt.start("approving", "o1", saga_id="s1")
        assert rt.signal("s1", "approval", Approval("ann", 1), signal_id="x") is True
        assert rt.signal("s1", "approval", Approval("eve", 9), signal_id="x") is False
        assert run.result(5).results["approval"] == Approval("ann", 1)
        received = [e.event for e in rt.history("s1") if isinstance(e.event, SignalReceived)]
        assert [r.signal_id for r in received] == ["x"]


@pytest.mark.parametrize("mode", MODES)
def test_a_wait_that_times_out_compensates(mode: sa.Mode) -> None:
    with _rt(approving(timeout=0.3)) as rt:
        outcome = rt.start("approving", "o1", saga_id="s1", mode=mode).result(5)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "no 'approval' signal within 0.3s" in outcome.reason
        assert outcome.compensated == ("hold",)
        ledger: Ledger = rt.state("bank")
        assert ledger.released == ["o1"]
        assert ledger.charged == []
        with pytest.raises(sa.SignalRefused, match="ended"):
            rt.signal("s1", "approval", Approval("ann", 1))


def test_past_the_pivot_a_timed_out_wait_waits_again() -> None:
    saga = sa.Saga(
        "pivoted",
        [
            sa.Step("hold", "bank", "hold", pivot=True),
            sa.WaitFor("approval", timeout=0.2, type=Approval),
            sa.Step("charge", "bank", "charge", retriable=True),
        ],
        input_type=str,
    )
    with _rt(saga) as rt:
        run = rt.start(saga, "o1", saga_id="s1")
        time.sleep(0.5)
        waits = [e.event for e in rt.history("s1") if isinstance(e.event, WaitStarted)]
        assert len(waits) >= 2
        rt.signal("s1", "approval", Approval("late", 3))
        assert run.result(5).ok


def test_signals_that_cannot_be_delivered_are_refused() -> None:
    with _rt(approving()) as rt:
        with pytest.raises(sa.UnknownSaga):
            rt.signal("nope", "approval", None)
        rt.start("approving", "o1", saga_id="s1")
        with pytest.raises(sa.SignalRefused, match="no such signal"):
            rt.signal("s1", "aproval", Approval("ann", 1))
        with pytest.raises(sa.SignalRefused, match="does not fit"):
            rt.signal("s1", "approval", {"who": "ann"})


@pytest.mark.parametrize("mode", MODES)
def test_a_crash_between_the_signal_and_its_consumption(mode: sa.Mode, tmp_path: Path) -> None:
    """The signal is journaled while the saga sleeps; the crash loses nothing of it."""
    saga = sa.Saga(
        "late_wait",
        [
            sa.Sleep("first", 0.5),
            sa.WaitFor("approval", type=Approval),
            sa.Step("charge", "bank", "charge"),
        ],
        input_type=str,
    )
    path = tmp_path / "signal.db"
    rt = sa.Runtime.open(path, participants=[Bank()], sagas=[saga])
    rt.start(saga, "o1", saga_id="s1", mode=mode)
    assert rt.signal("s1", "approval", Approval("cy", 2), signal_id="once")
    rt.crash()
    rt.close()
    with sa.Runtime.open(path, participants=[Bank()], sagas=[saga]) as again:
        assert again.signal("s1", "approval", Approval("cy", 2), signal_id="once") is False
        assert again.run("s1").result(5).results["approval"] == Approval("cy", 2)
        ledger: Ledger = again.state("bank")
        assert ledger.approvals == ["cy:2"]


def test_asignal() -> None:
    async def main() -> sa.Outcome:
        async with _rt(approving()) as rt:
            run = await rt.astart("approving", "o1", saga_id="s1")
            assert await rt.asignal("s1", "approval", Approval("al", 4)) is True
            outcome: sa.Outcome = await run
            return outcome

    assert anyio.run(main).results["approval"] == Approval("al", 4)


def _until(check: object, timeout: float = 5.0) -> None:
    deadline = time.time() + timeout
    while not check():  # type: ignore[operator]
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


# -- the crash sweep ---------------------------------------------------------------------------


def _sweep_saga() -> sa.Saga:
    return sa.Saga(
        "sweep",
        [
            sa.Step("hold", "bank", "hold"),
            sa.Sleep("nap", 0.05),
            sa.WaitFor("approval", type=Approval),
            sa.Step("charge", "bank", "charge"),
        ],
        input_type=str,
    )


def _sweep_workload(rt: sa.Runtime, mode: sa.Mode) -> list[str]:
    started = []
    try:
        rt.start(_sweep_saga(), "o1", saga_id="w1", mode=mode)
        started.append("w1")
        rt.signal("w1", "approval", Approval("sam", 1), signal_id="sig")
    except sa.RuntimeCrashed:
        pass
    return started


@pytest.mark.parametrize("mode", MODES)
def test_a_crash_anywhere_around_a_sleep_and_a_wait(mode: sa.Mode) -> None:
    """Crash at every pass of every point; after recovery (and the signal sent again with the
    same id) the saga completes, charged once, with the one approval."""
    from sagactor.persistence.memory import MemoryJournal
    from sagactor.testing import crash_and_recover, crash_cases

    def runtime(journal: MemoryJournal) -> sa.Runtime:
        return sa.Runtime(journal, participants=[Bank()], sagas=[_sweep_saga()])

    workload = functools.partial(_sweep_workload, mode=mode)
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY]
    cases = crash_cases(lambda: runtime(MemoryJournal()), workload, points)
    assert cases
    for case in cases:
        memory = MemoryJournal()
        started, rt = crash_and_recover(functools.partial(runtime, memory), workload, case)
        with rt:
            for saga_id in started:
                rt.signal(saga_id, "approval", Approval("sam", 1), signal_id="sig")
                outcome = rt.run(saga_id).result(5)
                assert outcome.ok, (case, outcome)
                assert outcome.results["approval"] == Approval("sam", 1)
            ledger: Ledger = rt.state("bank")
            assert ledger.charged == ["o1"] * len(started), case
