"""Bad input: every mistake a user can make raises a SagactorError that names the saga, the step
and the problem; the runtime stays usable and nothing it recorded before is lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import SagaStatus

WAIT = 10.0


class Item(msgspec.Struct, frozen=True):
    id: str


class Put(msgspec.Struct, frozen=True):
    key: str


class Took(msgspec.Struct, frozen=True):
    key: str


class Box(msgspec.Struct):
    held: list[str] = []


class Store(sa.Participant[Box]):
    """``put`` is compensable; ``peek`` has no compensation; ``boom`` raises; ``weird`` records a
    change and then returns something msgspec cannot encode."""

    name = "store"

    def initial_state(self) -> Box:
        return Box()

    @sa.action("put")
    def put(self, ctx: sa.StepContext, item: Item) -> str:
        ctx.record(Put(ctx.idempotency_key))
        return ctx.idempotency_key

    @sa.compensation("put")
    def take(self, ctx: sa.StepContext, item: Item, done: str) -> None:
        ctx.record(Took(done))

    @sa.action("peek")
    def peek(self, ctx: sa.StepContext, item: Item) -> int:
        return len(self.state.held)

    @sa.action("boom")
    def boom(self, ctx: sa.StepContext, item: Item) -> None:
        raise ZeroDivisionError(f"boom on {item.id}")

    @sa.action("weird")
    def weird(self, ctx: sa.StepContext, item: Item) -> object:
        ctx.record(Put(ctx.idempotency_key))  # must be rolled back: the reply cannot be encoded
        return object()

    @sa.evolve
    def _put(self, state: Box, change: Put) -> None:
        state.held.append(change.key)

    @sa.evolve
    def _took(self, state: Box, change: Took) -> None:
        state.held.remove(change.key)


GOOD = sa.Saga(
    "good",
    steps=[
        sa.Step("put_it", participant="store", action="put"),
        sa.Step("peek_at_it", participant="store", action="peek", compensable=False),
    ],
)


def saga_with(action: str, name: str) -> sa.Saga:
    return sa.Saga(
        name,
        steps=[
            sa.Step("put_it", participant="store", action="put"),
            sa.Step("bad_step", participant="store", action=action, compensable=False),
        ],
    )


@pytest.fixture
def rt() -> Iterator[sa.Runtime]:
    with sa.Runtime.in_memory(participants=[Store()]) as runtime:
        yield runtime


@pytest.fixture
def recorded(rt: sa.Runtime) -> tuple[str, list[sa.HistoryEntry]]:
    """A saga that ran before the bad input, and its history then."""
    run = rt.start(GOOD, Item("before"))
    assert run.result(WAIT).status is SagaStatus.COMPLETED
    return run.id, rt.history(run.id)


def still_usable(rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]) -> None:
    saga_id, history = recorded
    assert rt.history(saga_id) == history
    assert rt.status(saga_id).status is SagaStatus.COMPLETED
    run = rt.start(GOOD, Item("after"))
    assert run.result(WAIT).status is SagaStatus.COMPLETED
    assert f"{run.id}/put_it" in rt.state("store").held


# -- definitions ------------------------------------------------------------------------------


def test_an_empty_saga_is_refused() -> None:
    with pytest.raises(sa.DefinitionError, match="at least one step") as error:
        sa.Saga("hollow", steps=[])
    assert error.value.saga == "hollow"
    assert "'hollow'" in str(error.value)


def test_duplicate_step_names_are_refused() -> None:
    with pytest.raises(sa.DefinitionError, match="duplicate step name") as error:
        sa.Saga(
            "twice",
            steps=[
                sa.Step("put_it", participant="store", action="put"),
                sa.Step("put_it", participant="store", action="peek"),
            ],
        )
    assert (error.value.saga, error.value.step) == ("twice", "put_it")
    assert "'twice'" in str(error.value)
    assert "'put_it'" in str(error.value)


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        (sa.Step("", participant="store", action="put"), "non-empty name"),
        (sa.Step("s", participant=" ", action="put"), "non-empty participant"),
        (sa.Step("s", participant="store", action=""), "non-empty action"),
        (sa.Step("s", participant="store", action="put", timeout=-1.0), "timeout"),
        (sa.Step("s", participant="store", action="put", timeout=float("inf")), "timeout"),
    ],
)
def test_malformed_steps_are_refused(step: sa.Step, problem: str) -> None:
    with pytest.raises(sa.DefinitionError, match=problem) as error:
        sa.Saga("malformed", steps=[step])
    assert "'malformed'" in str(error.value)


def test_an_unknown_participant_is_refused(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    saga = sa.Saga("lost", steps=[sa.Step("ask_ghost", participant="ghost", action="put")])
    with pytest.raises(sa.UnknownParticipant) as error:
        rt.define(saga)
    assert error.value.participant == "ghost"
    assert (error.value.saga, error.value.step) == ("lost", "ask_ghost")
    message = str(error.value)
    for name in ("'lost'", "'ask_ghost'", "'ghost'", "store"):
        assert name in message
    with pytest.raises(sa.UnknownParticipant):
        rt.start(saga, Item("x"))
    assert "lost" not in rt.definitions
    still_usable(rt, recorded)


def test_an_unknown_action_is_refused(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    saga = sa.Saga("typo", steps=[sa.Step("stash", participant="store", action="putt")])
    with pytest.raises(sa.DefinitionError) as error:
        rt.start(saga, Item("x"))
    assert (error.value.saga, error.value.step) == ("typo", "stash")
    assert "no action 'putt'" in str(error.value)
    assert "boom, peek, put, weird" in str(error.value)  # what it does have
    still_usable(rt, recorded)


def test_a_compensable_step_without_a_compensation_is_refused(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    saga = sa.Saga("undoable", steps=[sa.Step("look", participant="store", action="peek")])
    with pytest.raises(sa.DefinitionError) as error:
        rt.define(saga)
    assert (error.value.saga, error.value.step) == ("undoable", "look")
    assert "@compensation('peek')" in str(error.value)
    assert "compensable=False" in str(error.value)
    rt.define(sa.Saga("undoable", steps=[sa.Step("look", "store", "peek", compensable=False)]))
    still_usable(rt, recorded)


def test_a_non_callable_handler_is_refused() -> None:
    with pytest.raises(sa.DefinitionError, match="not callable") as error:
        sa.action("go")(42)  # type: ignore[type-var]
    assert "@action('go')" in str(error.value)
    with pytest.raises(sa.DefinitionError, match="not callable"):
        sa.compensation("go")("not a function")  # type: ignore[type-var]


def test_a_handler_with_the_wrong_signature_is_refused() -> None:
    with pytest.raises(sa.DefinitionError, match=r"must take \(self, ctx, input\)") as error:

        class Sloppy(sa.Participant[None]):
            @sa.action("go")
            def go(self, ctx: sa.StepContext) -> None: ...

    assert "'Sloppy'" in str(error.value)
    assert "'go'" in str(error.value)

    with pytest.raises(sa.DefinitionError, match=r"\(self, ctx, input, done\)"):

        class Forgetful(sa.Participant[None]):
            @sa.action("go")
            def go(self, ctx: sa.StepContext, item: Item) -> None: ...

            @sa.compensation("go")
            def undo(self, ctx: sa.StepContext, item: Item) -> None: ...

    with pytest.raises(sa.DefinitionError, match="@evolve"):

        class Untyped(sa.Participant[None]):
            @sa.evolve
            def apply(self, state: None, change: Any) -> None: ...


def test_registering_a_participant_name_twice_is_refused(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    with pytest.raises(sa.DefinitionError, match="already registered"):
        rt.register(Store())
    still_usable(rt, recorded)


def test_a_bad_saga_id_or_mode_is_refused(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    for saga_id in ("a/b", "", " padded "):
        with pytest.raises(sa.DefinitionError, match="saga id") as error:
            rt.start(GOOD, Item("x"), saga_id=saga_id)
        assert error.value.saga == "good"
    with pytest.raises(sa.DefinitionError, match="mode"):
        rt.start(GOOD, Item("x"), mode="telepathy")  # type: ignore[arg-type]
    still_usable(rt, recorded)


def test_unknown_ids_and_names_are_reported(rt: sa.Runtime) -> None:
    with pytest.raises(sa.UnknownSaga, match="nope"):
        rt.status("nope")
    with pytest.raises(sa.UnknownSaga, match="nope"):
        rt.history("nope")
    with pytest.raises(sa.UnknownSaga, match="nope"):
        rt.resume("nope")
    with pytest.raises(sa.UnknownParticipant, match="'ghost'"):
        rt.state("ghost")
    with pytest.raises(sa.UnknownParticipant, match="'ghost'"):
        rt.inject("ghost", "put", sa.Fault("fail"))


# -- payloads ---------------------------------------------------------------------------------


def test_an_input_msgspec_cannot_encode_is_refused(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    before = set(rt.saga_ids())
    with pytest.raises(sa.PayloadError) as error:
        rt.start(GOOD, object())
    assert error.value.saga == "good"
    assert "'good'" in str(error.value)
    assert "the saga input cannot be encoded" in str(error.value)
    assert isinstance(error.value.cause, TypeError)
    assert set(rt.saga_ids()) == before  # nothing was started
    still_usable(rt, recorded)


def test_a_batch_with_one_bad_input_starts_none_of_it(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    before = set(rt.saga_ids())
    with pytest.raises(sa.PayloadError):
        rt.start_many(GOOD, [Item("fine"), {1j}])
    with pytest.raises(sa.DefinitionError, match="saga id"):
        rt.start_many(GOOD, [Item("fine"), Item("also fine")], saga_ids=["ok-id", "bad/id"])
    # a later saga runs to its end on the same coordinator: anything told earlier was handled
    run = rt.start(GOOD, Item("barrier"))
    assert run.result(WAIT).status is SagaStatus.COMPLETED
    assert set(rt.saga_ids()) == before | {run.id}
    still_usable(rt, recorded)


def test_a_result_msgspec_cannot_encode_compensates_the_saga(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    run = rt.start(saga_with("weird", "weird-result"), Item("w"))
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.compensated == ("put_it",)
    for part in (run.id, "'bad_step'", "'weird'", "cannot be encoded", "object"):
        assert part in outcome.reason
    held = rt.state("store").held
    assert f"{run.id}/put_it" not in held  # compensated
    assert f"{run.id}/bad_step" not in held  # the weird handler's change was rolled back
    history = rt.history(run.id)
    assert [e.event.step for e in history if e.type == "StepFailed"] == ["bad_step"]
    assert not [e for e in history if e.type == "Put" and e.cause.endswith("bad_step/action")]
    still_usable(rt, recorded)


def test_a_raising_handler_compensates_the_saga(
    rt: sa.Runtime, recorded: tuple[str, list[sa.HistoryEntry]]
) -> None:
    run = rt.start(saga_with("boom", "explosive"), Item("b"))
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.compensated == ("put_it",)
    assert "'bad_step'" in outcome.reason
    assert "ZeroDivisionError: boom on b" in outcome.reason
    (failed,) = [e.event for e in rt.history(run.id) if e.type == "StepFailed"]
    assert failed.business is False
    assert f"{run.id}/put_it" not in rt.state("store").held
    still_usable(rt, recorded)
