"""Guarantee 5 extended to data flow, the pivot and child sagas: orchestration and step-list
choreography of one definition read the same results and end alike.

A hypothesis property draws a saga of 1 to 5 steps ``s<i>`` on participants ``p<i>`` whose
actions *read* ``ctx.results`` and return a value built from what they read (so a result that
flows differently changes every later one), whose compensations read them too; optionally a
pivot (the steps after it retriable, some failing a few times before they go through);
optionally one step that is a child saga (two steps of its own, reading the parent's results
through its input); jobs that may name the step that refuses them (before the pivot); and,
optionally, a crash at a point both modes pass, then a recovery. Both runs must end with the
same outcomes (status, reason, results, compensated steps), the same participant states (what
every handler read, in order) and the same milestones.

Everything is drawn up front: threads decide only timing, never what the test draws.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import msgspec
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

from .chain import MODES

CI = os.environ.get("HYPOTHESIS_PROFILE") == "ci"
WAIT = 20.0
FAST = sa.RetryPolicy(max_attempts=1, backoff=0.001, max_backoff=0.005)


class Job(msgspec.Struct, frozen=True):
    id: str
    fail_at: str = ""


class Reads(msgspec.Struct):
    """What each handler read, by idempotency key, in the order the handlers ran."""

    log: list[str] = []
    applied: dict[str, int] = {}


class Read(msgspec.Struct, frozen=True):
    key: str
    line: str
    undo: bool = False


class Reader(sa.Participant[Reads]):
    """Reads every result it is given, records what it read, returns a value made of it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> Reads:
        return Reads()

    @sa.action("do")
    def do(self, ctx: sa.StepContext, job: Job) -> str:
        if job.fail_at == ctx.step:
            raise sa.StepFailed(f"{ctx.step} refuses {job.id}")
        read = ",".join(f"{k}={ctx.results[k]}" for k in sorted(ctx.results))
        ctx.record(Read(ctx.idempotency_key, f"{ctx.idempotency_key} read [{read}]"))
        return f"{ctx.step}({len(read)})"

    @sa.compensation("do")
    def undo(self, ctx: sa.StepContext, job: Job, done: str) -> None:
        read = ",".join(f"{k}={ctx.results[k]}" for k in sorted(ctx.results))
        ctx.record(Read(ctx.idempotency_key, f"undo {ctx.idempotency_key} [{read}]", True))

    @sa.evolve
    def _read(self, state: Reads, change: Read) -> None:
        state.log.append(change.line)
        key = f"{change.key}/undo" if change.undo else change.key
        state.applied[key] = state.applied.get(key, 0) + 1


@dataclass(frozen=True)
class Scenario:
    steps: int
    pivot: int | None  # the pivot's index; the steps after it are retriable
    child: int | None  # the index of the step that is a child saga (before the pivot)
    flaky: dict[int, int]  # retriable step -> how many times it fails first (no crash only)
    jobs: tuple[Job, ...]
    crash: tuple[sa.CrashPoint, int] | None

    def definition(self) -> sa.Saga:
        elements: list[sa.Step] = []
        for i in range(self.steps):
            if i == self.child:
                inner = sa.Saga(
                    "inner",
                    [sa.Step("c0", f"p{i}", "do"), sa.Step("c1", f"p{i}", "do")],
                    input_type=Job,
                )
                elements.append(sa.Child(f"s{i}", inner, input=_child_input))
                continue
            after = self.pivot is not None and i > self.pivot
            elements.append(
                sa.Step(
                    f"s{i}",
                    f"p{i}",
                    "do",
                    pivot=i == self.pivot,
                    retriable=after,
                    compensable=not after,
                    retry=FAST,
                )
            )
        return sa.Saga("flow", elements, input_type=Job)


def _child_input(given: sa.ChildInput) -> Job:
    """The child reads the parent's results through its input: the job's id carries them."""
    job: Job = given.input
    seen = "+".join(f"{k}={given.results[k]}" for k in sorted(given.results))
    refuse = "c1" if job.fail_at == "child" else ""
    return Job(f"{job.id}[{seen}]", refuse)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    crash = None
    if draw(st.booleans()):
        point = draw(st.sampled_from([sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY]))
        crash = (point, draw(st.integers(1, 10)))
    steps = draw(st.integers(1, 5))
    pivot = draw(st.none() | st.integers(0, steps - 1))
    before = range(steps if pivot is None else pivot)
    child = draw(st.none() | st.sampled_from(list(before))) if len(before) else None
    flaky = {}
    if pivot is not None and crash is None:  # a counted fault would restart after a crash
        for i in range(pivot + 1, steps):
            if draw(st.booleans()):
                flaky[i] = draw(st.integers(1, 2))
    refusable = [f"s{i}" for i in range(steps if pivot is None else pivot + 1) if i != child]
    refusable += ["child"] if child is not None else []
    jobs = tuple(
        Job(f"j{n}", draw(st.sampled_from(["", *refusable])) if refusable else "")
        for n in range(draw(st.integers(1, 3)))
    )
    return Scenario(steps, pivot, child, flaky, jobs, crash)


@dataclass
class Final:
    outcomes: dict[str, Any]
    states: dict[str, Any]
    milestones: dict[str, list[tuple[str, str, str]]]


MILESTONES = ("StepRetrying", "StepSucceeded", "StepFailed", "StepCompensated", "SagaCompleted")
ENDINGS = ("SagaCompensated", "SagaStuck", "ChildDone")


def _runtime(journal: MemoryJournal, scenario: Scenario, saga: sa.Saga) -> sa.Runtime:
    rt = sa.Runtime.in_memory(
        journal=journal,
        participants=[Reader(f"p{i}") for i in range(scenario.steps)],
        sagas=[saga],
        recover=False,
    )
    for i, times in scenario.flaky.items():
        rt.inject(f"p{i}", "do", sa.Fault("error", times=times))
    rt.recover()
    return rt


def run(scenario: Scenario, mode: sa.Mode) -> Final:
    saga = scenario.definition()
    journal = MemoryJournal()
    if scenario.crash is not None:
        with _runtime(journal, scenario, saga) as rt:
            rt.arm(*scenario.crash)
            for job in scenario.jobs:
                try:
                    run = rt.start(saga, job, saga_id=job.id, mode=mode)
                    while not rt.crashed:
                        try:
                            run.result(0.05)
                            break
                        except sa.SagaTimeout:
                            continue
                except sa.RuntimeCrashed:
                    break
                if rt.crashed:
                    break
    with _runtime(journal, scenario, saga) as rt:
        outcomes = {
            j.id: rt.start(saga, j, saga_id=j.id, mode=mode).result(WAIT) for j in scenario.jobs
        }
        children = {
            f"{j.id}/s{scenario.child}": rt.run(f"{j.id}/s{scenario.child}").result(WAIT)
            for j in scenario.jobs
            if scenario.child is not None and f"{j.id}/s{scenario.child}" in rt.saga_ids()
        }
        states = {f"p{i}": rt.state(f"p{i}") for i in range(scenario.steps)}
        milestones = {
            saga_id: [
                (e.saga_id, e.type, getattr(e.event, "step", ""))
                for e in rt.history(saga_id)
                if e.source == "coordinator" and (e.type in MILESTONES or e.type in ENDINGS)
            ]
            for saga_id in outcomes
        }
    for key, count in ((k, n) for s in states.values() for k, n in s.applied.items()):
        assert count == 1, f"{mode}: {key} applied {count} times"
    everything = {**outcomes, **children}
    return Final(msgspec.to_builtins(everything), msgspec.to_builtins(states), milestones)


@settings(max_examples=150 if CI else 40, deadline=None)
@given(scenarios())
def test_both_modes_read_the_same_results_and_end_alike(scenario: Scenario) -> None:
    note(repr(scenario))
    finals = {mode: run(scenario, mode) for mode in MODES}
    orchestrated, choreographed = finals["orchestration"], finals["choreography"]
    for mode, final in finals.items():
        note(f"{mode}: {final.outcomes}")
    event("pivot" if scenario.pivot is not None else "no pivot")
    event("child saga" if scenario.child is not None else "no child")
    if scenario.flaky:
        event("retriable steps failing first")
    assert orchestrated.outcomes == choreographed.outcomes
    assert orchestrated.states == choreographed.states
    assert orchestrated.milestones == choreographed.milestones
