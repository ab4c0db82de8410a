"""Silent state bugs in user code are caught: unrecorded changes (in check mode), and
``@evolve`` methods that return the new state are supported.

A participant's state is the fold of its recorded changes. A handler that changes
``self.state`` directly works live and is silently lost when the journal reopens; with
``Runtime(check_state=True)`` (or ``sagactor.testing.check_state()``) the step fails instead,
as a technical error that is not retried, with an :class:`UnrecordedChange` naming the handler
and saying what to do, and the state is rebuilt from the journal. An ``@evolve`` method may
return the new state (needed for immutable states: ``int``, frozen Structs); a return of
another type is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import sagactor as sa
import sagactor.testing
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


class Job(msgspec.Struct, frozen=True):
    sneaky: str = ""  # which handler changes the state without recording ("action", ...)
    then_fail: bool = False  # ... and then raises
    amount: int = 1


class Added(msgspec.Struct, frozen=True):
    key: str
    amount: int


class Removed(msgspec.Struct, frozen=True):
    key: str


class Booked(msgspec.Struct, frozen=True):
    saga_id: str


class Book(msgspec.Struct):
    total: int = 0
    keys: set[str] = set()
    by_key: dict[str, int] = {}


CALLS: dict[str, int] = {}


def _count(ctx: sa.StepContext) -> None:
    name = f"{ctx.saga_id}/{ctx.step}/{ctx.kind}"
    CALLS[name] = CALLS.get(name, 0) + 1


class Keeper(sa.Participant[Book]):
    """Adds an amount; a ``sneaky`` job also changes the state behind the journal's back."""

    name = "keeper"

    def initial_state(self) -> Book:
        return Book()

    def _sneak(self, job: Job, where: str) -> None:
        if job.sneaky == where:
            self.state.total += 1000  # not recorded: lost on reopen
            if job.then_fail:
                raise RuntimeError("and then it failed")

    @sa.action("add")
    def add(self, ctx: sa.StepContext, job: Job) -> str:
        _count(ctx)
        ctx.record(Added(ctx.idempotency_key, job.amount))
        self._sneak(job, "action")
        return ctx.idempotency_key

    @sa.action("add_async")
    async def add_async(self, ctx: sa.StepContext, job: Job) -> str:
        _count(ctx)
        await anyio.sleep(0)
        ctx.record(Added(ctx.idempotency_key, job.amount))
        self._sneak(job, "async")
        return ctx.idempotency_key

    @sa.compensation("add")
    def remove(self, ctx: sa.StepContext, job: Job, done: str) -> None:
        _count(ctx)
        ctx.record(Removed(done))
        self._sneak(job, "compensation")

    @sa.compensation("add_async")
    async def remove_async(self, ctx: sa.StepContext, job: Job, done: str) -> None:
        ctx.record(Removed(done))

    @sa.on(Job, emits=(Booked,))
    def on_job(self, ctx: sa.StepContext, job: Job) -> None:
        _count(ctx)
        ctx.record(Added(f"{ctx.saga_id}/on", job.amount))
        self._sneak(job, "reaction")
        ctx.publish(Booked(ctx.saga_id))

    # Evolve methods in both styles: through the argument, and through self.state.
    @sa.evolve
    def _added(self, state: Book, change: Added) -> None:
        state.total += change.amount
        state.keys.add(change.key)
        self.state.by_key[change.key] = change.amount

    @sa.evolve
    def _removed(self, state: Book, change: Removed) -> None:
        state.total -= state.by_key.pop(change.key)
        state.keys.discard(change.key)


class Refuser(sa.Participant[None]):
    name = "refuser"

    @sa.action("refuse")
    def refuse(self, ctx: sa.StepContext, job: Job) -> None:
        raise sa.StepFailed("no")


def saga(action: str = "add", *, fail_after: bool = False) -> sa.Saga:
    steps = [
        sa.Step(
            "add",
            participant="keeper",
            action=action,
            retry=sa.RetryPolicy(max_attempts=3, backoff=0.001),
        )
    ]
    if fail_after:
        steps.append(sa.Step("refuse", participant="refuser", action="refuse", compensable=False))
    return sa.Saga(f"keep-{action}-{fail_after}", steps=steps, input_type=Job)


NATIVE = sa.Choreography("keep-native", start=Job, completed=(Booked,))


@pytest.fixture(params=["memory", "sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., sa.Runtime]:
    journal = MemoryJournal()

    def open_runtime(**options: Any) -> sa.Runtime:
        people: list[sa.Participant[Any]] = [Keeper(), Refuser()]
        if request.param == "sqlite":
            return sa.Runtime.open(tmp_path / "book.db", participants=people, **options)
        return sa.Runtime.in_memory(journal=journal, participants=people, **options)

    return open_runtime


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


# -- the bug, without checks --------------------------------------------------------------------


def test_without_checks_an_unrecorded_change_is_lost_on_reopen(
    opener: Callable[..., sa.Runtime],
) -> None:
    """Why check mode exists: the change works live and vanishes after a restart."""
    with opener(check_state=False) as rt:
        run = rt.start(saga(), Job(sneaky="action"))
        assert run.result(WAIT).status is sa.SagaStatus.COMPLETED
        assert rt.state("keeper").total == 1001
    with opener(check_state=False) as rt:
        assert rt.state("keeper").total == 1


# -- check mode catches it ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
@pytest.mark.parametrize(("action", "where"), [("add", "action"), ("add_async", "async")])
@pytest.mark.parametrize("then_fail", [False, True])
def test_an_unrecorded_change_fails_the_step_once_and_names_the_handler(
    opener: Callable[..., sa.Runtime], mode: sa.Mode, action: str, where: str, then_fail: bool
) -> None:
    with opener(check_state=True) as rt:
        good = rt.start(saga(action), Job(amount=5), mode=mode)
        run = rt.start(saga(action), Job(sneaky=where, then_fail=then_fail), mode=mode)
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "changed self.state without ctx.record" in outcome.reason
        assert f"{action!r} (saga {run.id!r}, step 'add')" in outcome.reason
        assert "ctx.record(SomeChange(...))" in outcome.reason
        assert CALLS[f"{run.id}/add/action"] == 1  # not retried, despite max_attempts=3
        assert good.result(WAIT).status is sa.SagaStatus.COMPLETED
        book = rt.state("keeper")
        assert book.total == 5  # the good saga's; the sneaky change was rolled back
        assert book.keys == {f"{good.id}/add"}
    with opener(check_state=True) as rt:
        assert rt.state("keeper") == book  # what the journal says is what was live


def test_an_unrecorded_change_in_a_compensation_leaves_the_saga_stuck(
    opener: Callable[..., sa.Runtime],
) -> None:
    with opener(check_state=True) as rt:
        run = rt.start(saga(fail_after=True), Job(sneaky="compensation"))
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.STUCK
        assert "'remove'" in outcome.reason
        assert "without ctx.record" in outcome.reason
        # (a compensation is retried under its policy whatever the error: then stuck)
        assert rt.state("keeper").total == 1  # the action stands; the sneaky change is gone


def test_an_unrecorded_change_in_a_native_reaction_leaves_the_saga_stuck(
    opener: Callable[..., sa.Runtime],
) -> None:
    with opener(check_state=True, sagas=[NATIVE]) as rt:
        run = rt.start(NATIVE, Job(sneaky="reaction"))
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.STUCK
        assert "'on_job'" in outcome.reason
        assert "without ctx.record" in outcome.reason
        assert CALLS[f"{run.id}/Job/on"] == 1  # reported at once, not retried
        assert rt.state("keeper").total == 0
        ok = rt.start(NATIVE, Job(amount=3)).result(WAIT)
        assert ok.status is sa.SagaStatus.COMPLETED


def test_correct_handlers_pass_the_check_with_many_sagas_and_a_restart(
    opener: Callable[..., sa.Runtime],
) -> None:
    """No false alarm: sets (whose encoding order may differ), dicts changed through
    ``self.state`` in an ``@evolve``, compensations, async handlers, native reactions."""
    with opener(check_state=True, sagas=[NATIVE], snapshot_every=7) as rt:
        runs = [rt.start(saga(), Job(amount=n)) for n in range(20)]
        runs += [rt.start(saga("add_async"), Job(amount=n)) for n in range(20)]
        runs += [rt.start(saga(fail_after=True), Job(amount=n)) for n in range(10)]
        runs += [rt.start(NATIVE, Job(amount=n)) for n in range(10)]
        outcomes = [r.result(WAIT) for r in runs]
        assert [o.status for o in outcomes].count(sa.SagaStatus.COMPLETED) == 50
        assert [o.status for o in outcomes].count(sa.SagaStatus.COMPENSATED) == 10
        book = rt.state("keeper")
        assert book.total == 2 * sum(range(20)) + sum(range(10))
    with opener(check_state=True, sagas=[NATIVE]) as rt:
        assert rt.state("keeper") == book


def test_sagactor_testing_turns_the_check_on_for_new_runtimes() -> None:
    previous = sagactor.testing.check_state()
    try:
        with sa.Runtime.in_memory(participants=[Keeper()]) as rt:
            outcome = rt.start(saga(), Job(sneaky="action")).result(WAIT)
            assert outcome.status is sa.SagaStatus.COMPENSATED
            assert "without ctx.record" in outcome.reason
        with sa.Runtime.in_memory(participants=[Keeper()], check_state=False) as rt:
            outcome = rt.start(saga(), Job(sneaky="action")).result(WAIT)
            assert outcome.status is sa.SagaStatus.COMPLETED  # explicitly off
    finally:
        assert sagactor.testing.check_state(previous) is True
    with sa.Runtime.in_memory(participants=[Keeper()]) as rt:
        assert rt.start(saga(), Job(sneaky="action")).result(WAIT).status is (
            sa.SagaStatus.COMPLETED
        )


def test_unrecorded_change_is_a_sagactor_error_with_its_facts() -> None:
    error = sa.UnrecordedChange("keeper", "add", "s1", "step")
    assert isinstance(error, sa.SagactorError)
    assert (error.participant, error.handler, error.saga_id, error.step) == (
        "keeper",
        "add",
        "s1",
        "step",
    )


# -- @evolve returning the new state -----------------------------------------------------------


class Bump(msgspec.Struct, frozen=True):
    n: int


class Tally(msgspec.Struct, frozen=True):
    count: int = 0
    last: str = ""


class Counter(sa.Participant[int]):
    """An ``int`` state: only a returned value can change it."""

    name = "counter"

    def initial_state(self) -> int:
        return 0

    @sa.action("bump")
    def bump(self, ctx: sa.StepContext, job: Job) -> int:
        ctx.record(Bump(job.amount))
        return self.state

    @sa.compensation("bump")
    def unbump(self, ctx: sa.StepContext, job: Job, done: int) -> None:
        ctx.record(Bump(-job.amount))

    @sa.evolve
    def _bump(self, state: int, change: Bump) -> int:
        return state + change.n


class Tallier(sa.Participant[Tally]):
    """A frozen Struct state, replaced by each change."""

    name = "tallier"

    def initial_state(self) -> Tally:
        return Tally()

    @sa.action("tally")
    def tally(self, ctx: sa.StepContext, job: Job) -> None:
        ctx.record(Bump(job.amount))

    @sa.compensation("tally")
    def untally(self, ctx: sa.StepContext, job: Job, done: None) -> None:
        ctx.record(Bump(-job.amount))

    @sa.evolve
    def _bump(self, state: Tally, change: Bump) -> Tally:
        return msgspec.structs.replace(state, count=state.count + change.n, last=str(change.n))


IMMUTABLE = sa.Saga(
    "immutable",
    steps=[
        sa.Step("bump", participant="counter", action="bump"),
        sa.Step("tally", participant="tallier", action="tally"),
    ],
    input_type=Job,
)


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_evolve_may_return_the_new_state(tmp_path: Path, mode: sa.Mode, storage: str) -> None:
    journal = MemoryJournal()

    def open_runtime() -> sa.Runtime:
        people: list[sa.Participant[Any]] = [Counter(), Tallier()]
        options: dict[str, Any] = {"check_state": True, "snapshot_every": 3}
        if storage == "sqlite":
            return sa.Runtime.open(tmp_path / "n.db", participants=people, **options)
        return sa.Runtime.in_memory(journal=journal, participants=people, **options)

    with open_runtime() as rt:
        runs = [rt.start(IMMUTABLE, Job(amount=n), mode=mode) for n in range(1, 11)]
        assert {r.result(WAIT).status for r in runs} == {sa.SagaStatus.COMPLETED}
        assert rt.state("counter") == 55
        assert rt.state("tallier").count == 55
        results = sorted(r.result(WAIT).results["bump"] for r in runs)
        assert results[-1] == 55  # the handler saw the state the evolve returned
    with open_runtime() as rt:  # replayed (from snapshots too) the same way
        assert rt.state("counter") == 55
        assert rt.state("tallier").count == 55


class WrongType(sa.Participant[int]):
    name = "wrong"

    def initial_state(self) -> int:
        return 0

    @sa.action("bump")
    def bump(self, ctx: sa.StepContext, job: Job) -> None:
        ctx.record(Bump(job.amount))

    @sa.evolve
    def _bump(self, state: int, change: Bump) -> str:
        return f"{state + change.n}"


class Stateless(sa.Participant[None]):
    name = "stateless"

    @sa.action("bump")
    def bump(self, ctx: sa.StepContext, job: Job) -> None:
        ctx.record(Bump(job.amount))

    @sa.evolve
    def _bump(self, state: None, change: Bump) -> int:
        return change.n


@pytest.mark.parametrize(
    ("participant", "problem"),
    [
        (WrongType(), "returned '1' (a str), but the state is a int"),
        (Stateless(), "initial_state() returns None"),
    ],
)
def test_an_evolve_returning_something_else_is_refused_by_name(
    participant: sa.Participant[Any], problem: str
) -> None:
    name = participant.participant_name
    one = sa.Saga(
        "one",
        steps=[sa.Step("bump", participant=name, action="bump", compensable=False)],
        input_type=Job,
    )
    with sa.Runtime.in_memory(participants=[participant]) as rt:
        outcome = rt.start(one, Job(amount=1)).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert f"participant {type(participant).__name__!r}: @evolve method '_bump'" in (
            outcome.reason
        )
        assert problem in outcome.reason
        assert rt.state(name) == participant.initial_state()
