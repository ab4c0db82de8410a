"""Results keep their type across a restart: an action's result is decoded with the type its
handler declares, the same live, from the inbox and after recovery, so a live run's outcome
equals the outcome read back after reopening the journal (SQLite and in memory, both modes),
and a compensation's ``done`` is that same value.

Before, a live ``Outcome.results["reserve"]`` was the handler's Struct and a recovered one a
plain dict: the two outcomes compared unequal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0
MODES: tuple[sa.Mode, ...] = ("orchestration", "choreography")


class Job(msgspec.Struct, frozen=True):
    sku: str
    qty: int
    fail: bool = False


class Hold(msgspec.Struct, frozen=True):
    key: str
    sku: str
    qty: int


class Held(msgspec.Struct, frozen=True):
    key: str
    qty: int


class Freed(msgspec.Struct, frozen=True):
    key: str
    done: Hold  # what the compensation received as ``done``, kept to compare


class Shelf(msgspec.Struct):
    held: dict[str, int] = {}
    freed: list[Hold] = []


class Warehouse(sa.Participant[Shelf]):
    """``hold`` declares a Struct; ``count`` a generic; ``note`` declares nothing (Any).
    The compensation of ``hold`` leaves ``done`` unannotated: it gets the declared type."""

    name = "warehouse"

    def initial_state(self) -> Shelf:
        return Shelf()

    @sa.action("hold")
    def hold(self, ctx: sa.StepContext, job: Job) -> Hold:
        ctx.record(Held(ctx.idempotency_key, job.qty))
        return Hold(ctx.idempotency_key, job.sku, job.qty)

    @sa.compensation("hold")
    def free(self, ctx: sa.StepContext, job: Job, done) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(done, Hold), done  # else this compensation fails, and the saga sticks
        ctx.record(Freed(done.key, done))

    @sa.action("count")
    def count(self, ctx: sa.StepContext, job: Job) -> dict[str, list[int]]:
        return {job.sku: [job.qty, job.qty * 2]}

    @sa.compensation("count")
    def uncount(self, ctx: sa.StepContext, job: Job, done: dict[str, list[int]]) -> None:
        pass

    @sa.action("note")
    def note(self, ctx: sa.StepContext, job: Job):  # type: ignore[no-untyped-def]
        if job.fail:
            raise sa.StepFailed("no note for this job")
        return {"sku": job.sku}

    @sa.evolve
    def _held(self, state: Shelf, change: Held) -> None:
        state.held[change.key] = change.qty

    @sa.evolve
    def _freed(self, state: Shelf, change: Freed) -> None:
        del state.held[change.key]
        state.freed.append(change.done)


class Liar(sa.Participant[None]):
    """Declares a Hold and returns something else: a technical failure, never a wrong type."""

    name = "liar"

    @sa.action("claim")
    def claim(self, ctx: sa.StepContext, job: Job) -> Hold:
        return "not a hold"  # type: ignore[return-value]


SAGA = sa.Saga(
    "typed",
    [
        sa.Step("reserve", participant="warehouse", action="hold"),
        sa.Step("tally", participant="warehouse", action="count"),
        sa.Step("note", participant="warehouse", action="note", compensable=False),
    ],
    input_type=Job,
)
LYING = sa.Saga(
    "lying",
    [
        sa.Step("reserve", participant="warehouse", action="hold"),
        sa.Step("claim", participant="liar", action="claim", compensable=False),
    ],
    input_type=Job,
)

Opener = Callable[[], sa.Runtime]


@pytest.fixture(params=["sqlite", "memory"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a runtime on the same journal each time (SQLite file, or one MemoryJournal)."""
    journal = MemoryJournal()
    opened: list[sa.Runtime] = []

    def open_runtime() -> sa.Runtime:
        parts: list[sa.Participant[Any]] = [Warehouse(), Liar()]
        if request.param == "sqlite":
            rt = sa.Runtime.open(tmp_path / "typed.db", participants=parts, sagas=[SAGA, LYING])
        else:
            rt = sa.Runtime.in_memory(journal=journal, participants=parts, sagas=[SAGA, LYING])
        opened.append(rt)
        return rt

    yield open_runtime
    for rt in opened:
        rt.close()


@pytest.mark.parametrize("mode", MODES)
def test_outcome_is_equal_live_and_after_a_restart(reopen: Opener, mode: sa.Mode) -> None:
    with reopen() as rt:
        live = rt.start(SAGA, Job("sku-1", 3), saga_id="ok", mode=mode).result(WAIT)
    assert live.ok
    assert live.results["reserve"] == Hold("ok/reserve", "sku-1", 3)
    assert type(live.results["reserve"]) is Hold
    assert live.results["tally"] == {"sku-1": [3, 6]}
    assert live.results["note"] == {"sku": "sku-1"}  # unannotated: plain data
    with reopen() as rt:
        again = rt.run("ok").result(WAIT)
        assert again == live
        assert type(again.results["reserve"]) is Hold
        assert rt.status("ok") == live


@pytest.mark.parametrize("mode", MODES)
def test_compensation_gets_the_declared_type(reopen: Opener, mode: sa.Mode) -> None:
    with reopen() as rt:
        runs = [
            rt.start(SAGA, Job("sku-2", n, fail=True), saga_id=f"undo-{n}", mode=mode)
            for n in range(1, 6)
        ]
        outcomes = [run.result(WAIT) for run in runs]
        assert {o.status for o in outcomes} == {sa.SagaStatus.COMPENSATED}
        freed = rt.state("warehouse").freed
    # What ``done`` was, in the compensation: the Hold the action returned, typed.
    assert sorted(freed, key=lambda h: h.qty) == [
        Hold(f"undo-{n}/reserve", "sku-2", n) for n in range(1, 6)
    ]
    with reopen() as rt:  # and the same after a restart (the state was folded from the journal)
        assert rt.state("warehouse").freed == freed
        for outcome in outcomes:
            assert rt.status(outcome.saga_id) == outcome


def test_results_of_a_saga_recovered_midway_are_typed(reopen: Opener) -> None:
    rt = reopen()
    rt.inject("warehouse", "count", sa.Fault("delay", seconds=30.0))  # hangs in step 2
    rt.start(SAGA, Job("sku-3", 4), saga_id="midway")
    deadline = time.monotonic() + WAIT
    while not any(e.type == "StepSucceeded" for e in rt.history("midway")):
        assert time.monotonic() < deadline, "step 1 never succeeded"
        time.sleep(0.02)
    rt.crash()  # the result of step 1 is only in the journal now
    with reopen() as again:
        outcome = again.run("midway").result(WAIT)
    assert outcome.ok
    assert outcome.results["reserve"] == Hold("midway/reserve", "sku-3", 4)
    assert type(outcome.results["reserve"]) is Hold


@pytest.mark.parametrize("mode", MODES)
def test_a_result_that_is_not_the_declared_type_fails_the_step(
    reopen: Opener, mode: sa.Mode
) -> None:
    with reopen() as rt:
        outcome = rt.start(LYING, Job("sku-4", 1), saga_id="lie", mode=mode).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "the result of 'claim' as the Hold it declares" in outcome.reason, outcome.reason
        assert rt.state("warehouse").held == {}  # the first step was undone
        entries = [e for e in rt.history("lie") if e.source == "liar"]
        # Nothing of the lie was journaled: only the in-doubt step's refusing tombstone.
        assert [e.event.kind for e in entries] == ["compensation"]
        assert entries[0].event.outcome == "tombstone"


def test_a_return_type_msgspec_cannot_decode_is_a_definition_error() -> None:
    with pytest.raises(sa.DefinitionError, match=r"'make' returns .* msgspec cannot decode"):

        class Bad(sa.Participant[None]):
            @sa.action("make")
            def make(self, ctx: sa.StepContext, job: Job) -> Hold | Held:  # untagged: ambiguous
                return Held("k", 1)
