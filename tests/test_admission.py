"""Concurrency limits on sagas: ``Saga(max_in_flight=N)`` and the durable, fair queue.

The participant measures: a turnstile counts the sagas between their ``enter`` and ``leave``
steps, so "never more than N in flight" is what it saw, not what the runtime says. Sagas past
the limit are acknowledged (durable) and wait ``queued``, higher priority first and first come
first served within a priority; a restart keeps the queue and its order, and a queued saga is
started once.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import SagaAdmitted, SagaQueued

from .chain import MODES


class Gate(msgspec.Struct):
    inside: list[str] = []
    entered: list[str] = []
    left: list[str] = []
    most: int = 0


class Passed(msgspec.Struct, frozen=True):
    order: str
    entering: bool


class Turnstile(sa.Participant[Gate]):
    """Counts the sagas between ``enter`` and ``leave``: the most at once is ``most``."""

    name = "turnstile"

    def initial_state(self) -> Gate:
        return Gate()

    @sa.action("enter")
    def enter(self, ctx: sa.StepContext, order: str) -> str:
        ctx.record(Passed(order, entering=True))
        return order

    @sa.compensation("enter")
    def undo_enter(self, ctx: sa.StepContext, order: str, done: str) -> None:
        ctx.record(Passed(order, entering=False))

    @sa.action("leave")
    def leave(self, ctx: sa.StepContext, order: str) -> str:
        ctx.record(Passed(order, entering=False))
        return order

    @sa.evolve
    def _passed(self, state: Gate, change: Passed) -> None:
        if change.entering:
            state.inside.append(change.order)
            state.entered.append(change.order)
            state.most = max(state.most, len(state.inside))
        elif change.order in state.inside:
            state.inside.remove(change.order)
            state.left.append(change.order)


def gated(limit: int, *, wait: bool = False, pause: float = 0.02) -> sa.Saga:
    """enter, then a sleep (or a wait for signal "go"), then leave; ``limit`` at once."""
    middle = sa.WaitFor("go") if wait else sa.Sleep("inside", pause)
    return sa.Saga(
        "gated",
        [
            sa.Step("enter", "turnstile", "enter"),
            middle,
            sa.Step("leave", "turnstile", "leave", compensable=False),
        ],
        input_type=str,
        max_in_flight=limit,
    )


def _until(check: object, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not check():  # type: ignore[operator]
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("mode", MODES)
def test_never_more_than_the_limit_in_flight(mode: sa.Mode) -> None:
    """60 starts at once (many threads and one batch) under a limit of 4: the turnstile
    never sees more than 4 inside, and sees 4 (the limit is used, not just respected)."""
    with sa.Runtime.in_memory(participants=[Turnstile()], sagas=[gated(4)]) as rt:
        runs: list[sa.SagaRun] = []
        lock = threading.Lock()

        def starter(first: int) -> None:
            for i in range(first, first + 10):
                run = rt.start("gated", f"o{i}", mode=mode)
                with lock:
                    runs.append(run)

        threads = [threading.Thread(target=starter, args=(n * 10,)) for n in range(3)]
        for thread in threads:
            thread.start()
        runs += rt.start_many("gated", [f"b{i}" for i in range(30)], mode=mode)
        for thread in threads:
            thread.join()
        assert len(runs) == 60
        for run in runs:
            assert run.result(30).ok
        gate: Gate = rt.state("turnstile")
        assert gate.most == 4
        assert sorted(gate.left) == sorted(gate.entered)
        assert len(gate.entered) == 60


@pytest.mark.parametrize("mode", MODES)
def test_queued_sagas_are_visible_and_admitted_by_priority_then_order(mode: sa.Mode) -> None:
    """Behind a blocker: equal priorities go first come first served, a higher priority goes
    before them; status shows queued with the position; history shows the queue."""
    with sa.Runtime.in_memory(participants=[Turnstile()], sagas=[gated(1, wait=True)]) as rt:
        blocker = rt.start("gated", "blocker", saga_id="blocker", mode=mode)
        _until(lambda: rt.state("turnstile").entered == ["blocker"])
        for name, priority in [("a", 0), ("b", 0), ("c", 5), ("d", 0), ("e", 5), ("f", -1)]:
            rt.start("gated", name, saga_id=name, mode=mode, priority=priority)
        expected = ["c", "e", "a", "b", "d", "f"]
        for place, name in enumerate(expected, start=1):
            status = rt.status(name)
            assert status.status == sa.SagaStatus.QUEUED
            assert f"position {place} of 6" in status.reason, status.reason
        assert rt.counts().get("queued") == 6
        listed = {row.id for row in rt.list(status="queued").rows}
        assert listed == set(expected)
        for name in [*expected, "blocker"]:  # kept (queued ones first) until each reaches its wait
            rt.signal(name, "go", None)
        assert blocker.result(10).ok
        for name in expected:
            assert rt.run(name).result(10).ok
        assert rt.state("turnstile").entered == ["blocker", *expected]
        kinds = [type(entry.event).__name__ for entry in rt.history("c")]
        # queued, its signal kept while it waited, then admitted and run
        assert kinds[:4] == ["SagaStarted", "SagaQueued", "SignalReceived", "SagaAdmitted"]


def test_a_cancelled_queued_saga_leaves_the_queue_and_never_runs() -> None:
    with sa.Runtime.in_memory(participants=[Turnstile()], sagas=[gated(1, wait=True)]) as rt:
        rt.start("gated", "blocker", saga_id="blocker")
        rt.start("gated", "x", saga_id="x")
        rt.start("gated", "y", saga_id="y")
        rt.cancel("x", "not needed")
        outcome = rt.run("x").result(5)
        assert outcome.status == sa.SagaStatus.COMPENSATED
        assert outcome.reason == "not needed"
        assert "position 1 of 1" in rt.status("y").reason
        for name in ("blocker", "y"):
            rt.signal(name, "go", None)
            assert rt.run(name).result(5).ok
        assert rt.state("turnstile").entered == ["blocker", "y"]


def test_an_admission_that_cannot_be_journaled_is_admitted_again_once() -> None:
    """The disk refuses the first ``SagaAdmitted``: the saga is reloaded, still queued, and
    admitted again when the write succeeds; it runs once."""
    from sagactor.persistence.journal import Record
    from sagactor.persistence.memory import MemoryJournal

    refused: list[str] = []

    def fault(records: Sequence[Record]) -> None:
        if not refused and any(r.type == "SagaAdmitted" for r in records):
            refused.append(records[0].stream)
            raise OSError(28, "disk full (once)")

    journal = MemoryJournal()
    journal.fault = fault
    saga = gated(1, wait=True)
    with sa.Runtime(journal, participants=[Turnstile()], sagas=[saga]) as rt:
        rt.start("gated", "first", saga_id="first")
        rt.start("gated", "second", saga_id="second")
        for name in ("second", "first"):  # second's first: kept while it is queued
            rt.signal(name, "go", None)
        for name in ("first", "second"):
            assert rt.run(name).result(10).ok
        assert refused == ["saga/second"]
        assert rt.state("turnstile").entered == ["first", "second"]
        admitted = [e for e in rt.history("second") if isinstance(e.event, SagaAdmitted)]
        assert len(admitted) == 1


def test_limits_and_priorities_are_checked() -> None:
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(sa.DefinitionError, match="max_in_flight"):
            sa.Saga("s", [sa.Step("enter", "turnstile", "enter")], max_in_flight=bad)  # type: ignore[arg-type]
    with sa.Runtime.in_memory(participants=[Turnstile()], sagas=[gated(1)]) as rt:
        for bad_priority in (1.5, "high", None, True):
            with pytest.raises(sa.InvalidPriority):
                rt.start("gated", "o", priority=bad_priority)  # type: ignore[arg-type]
        assert rt.saga_ids() == []  # nothing was journaled


def _queued_on_disk(path: Path, mode: sa.Mode) -> None:
    with sa.Runtime.open(path, participants=[Turnstile()], sagas=[gated(2, wait=True)]) as rt:
        for name, priority in [("r1", 0), ("r2", 0), ("q1", 0), ("q2", 0), ("q3", 9)]:
            rt.start("gated", name, saga_id=name, mode=mode, priority=priority)
        _until(lambda: len(rt.state("turnstile").entered) == 2)
        assert rt.status("q3").status == sa.SagaStatus.QUEUED


@pytest.mark.parametrize("mode", MODES)
def test_the_queue_and_its_order_survive_a_restart(mode: sa.Mode, tmp_path: Path) -> None:
    """Closed with two running and three queued: after reopening, the running two hold the
    slots (the queued stay queued, in their order) and each saga is started exactly once."""
    path = tmp_path / "q.db"
    _queued_on_disk(path, mode)
    with sa.Runtime.open(path, participants=[Turnstile()], sagas=[gated(2, wait=True)]) as rt:
        assert [rt.status(n).status for n in ("q3", "q1", "q2")] == [sa.SagaStatus.QUEUED] * 3
        assert "position 1 of 3" in rt.status("q3").reason
        assert "position 3 of 3" in rt.status("q2").reason
        rt.signal("r1", "go", None)
        assert rt.run("r1").result(10).ok
        _until(lambda: rt.status("q3").status == sa.SagaStatus.RUNNING)
        assert rt.status("q1").status == sa.SagaStatus.QUEUED
        for name in ("r2", "q3", "q1", "q2"):
            rt.signal(name, "go", None)
        for name in ("r2", "q3", "q1", "q2"):
            assert rt.run(name).result(10).ok
        gate: Gate = rt.state("turnstile")
        assert gate.entered[2:] == ["q3", "q1", "q2"]
        assert gate.most == 2
        assert sorted(gate.entered) == sorted(["r1", "r2", "q1", "q2", "q3"])  # once each
        for name in ("q1", "q2", "q3"):
            events = [entry.event for entry in rt.history(name)]
            assert sum(isinstance(e, SagaAdmitted) for e in events) == 1
            assert sum(isinstance(e, SagaQueued) for e in events) == 1


def test_inspect_shows_a_queued_saga_and_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the journal alone (no runtime): the same order the runtime admits in."""
    from sagactor.playground.cli import main

    path = tmp_path / "q.db"
    _queued_on_disk(path, "orchestration")
    capsys.readouterr()
    assert main(["inspect", str(path), "list", "--status", "queued"]) == 0
    listed = capsys.readouterr().out
    assert sorted(line.split()[0] for line in listed.splitlines()) == ["q1", "q2", "q3"]
    assert main(["inspect", str(path), "show", "q1"]) == 0
    shown = capsys.readouterr().out
    assert "queued: position 2 of 3 for a slot of 'gated'" in shown
    assert "SagaQueued priority=0 ticket=" in shown
    assert main(["inspect", str(path), "--json", "show", "q3"]) == 0
    assert msgspec.json.decode(capsys.readouterr().out)["queue"] == {"position": 1, "of": 3}


def _sweep_workload(rt: sa.Runtime, mode: sa.Mode) -> list[str]:
    started: list[str] = []
    try:
        for name in ("s1", "s2", "s3"):
            rt.start("gated", name, saga_id=name, mode=mode, priority=int(name == "s3"))
            started.append(name)
    except sa.RuntimeCrashed:
        pass
    return started


@pytest.mark.parametrize("mode", MODES)
def test_a_crash_anywhere_around_a_queued_saga(mode: sa.Mode) -> None:
    """Limit 1, three starts (two queued): crash at every pass of every point; after recovery
    each acknowledged saga completes, entered exactly once, never two inside at once."""
    from sagactor.persistence.memory import MemoryJournal
    from sagactor.testing import crash_and_recover, crash_cases

    def runtime(journal: MemoryJournal) -> sa.Runtime:
        return sa.Runtime(journal, participants=[Turnstile()], sagas=[gated(1, pause=0.01)])

    workload = functools.partial(_sweep_workload, mode=mode)
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY]
    cases = crash_cases(lambda: runtime(MemoryJournal()), workload, points)
    assert len(cases) > 10
    for case in cases:
        memory = MemoryJournal()
        started, rt = crash_and_recover(functools.partial(runtime, memory), workload, case)
        with rt:
            for saga_id in started:
                assert rt.run(saga_id).result(10).ok, case
            gate: Gate = rt.state("turnstile")
            assert sorted(gate.entered) == sorted(set(gate.entered)), case
            assert set(started) <= set(gate.entered), case
            assert gate.most == 1, case
