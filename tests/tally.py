"""A two-step saga over participants that tally what they did and undid: the domain of the
tests that count journal calls (snapshots, reads) with many sagas in flight."""

from __future__ import annotations

import msgspec

import sagactor as sa

__all__ = ["TWO_STEPS", "Bumped", "Job", "Tallier", "Tally", "participants"]


class Job(msgspec.Struct, frozen=True):
    n: int


class Bumped(msgspec.Struct, frozen=True):
    by: int


class Tally(msgspec.Struct):
    done: int = 0


class Tallier(sa.Participant[Tally]):
    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> Tally:
        return Tally()

    @sa.action("work")
    def work(self, ctx: sa.StepContext, job: Job) -> int:
        ctx.record(Bumped(1))
        return job.n

    @sa.compensation("work")
    def undo(self, ctx: sa.StepContext, job: Job, done: int) -> None:
        ctx.record(Bumped(-1))

    @sa.evolve
    def _bumped(self, state: Tally, change: Bumped) -> None:
        state.done += change.by


TWO_STEPS = sa.Saga(
    "two-steps",
    [
        sa.Step("first", participant="one", action="work"),
        sa.Step("second", participant="two", action="work"),
    ],
    input_type=Job,
)


def participants() -> list[sa.Participant[Tally]]:
    return [Tallier("one"), Tallier("two")]
