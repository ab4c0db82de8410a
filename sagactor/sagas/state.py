"""A saga's state and its fold: :func:`evolve` applies one journal event. Pure.

Folding a saga's journal with :func:`evolve` rebuilds the state, which is all recovery needs;
:func:`~sagactor.sagas.machine.decide` emits events through :func:`emit`, which applies each as
it goes, so a live saga and a recovered one pass through the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, overload

import msgspec

from ..messages import (
    ChildDone,
    CompensationFailed,
    CompensationStarted,
    SagaCancelled,
    SagaEvent,
    SagaOverdue,
    SagaQueued,
    SagaResumed,
    SagaStarted,
    SagaStatus,
    SignalReceived,
    SleepStarted,
    StepAbandoned,
    StepCompensated,
    StepFenced,
    StepResolved,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
    WaitStarted,
)
from ..names import ACTION, COMPENSATION
from .definition import Saga
from .endings import failure_reason, fold_end

__all__ = [
    "Attempt",
    "SagaState",
    "Seldom",
    "SeldomMade",
    "emit",
    "evolve",
    "made_on_first_use",
    "stack_for_compensation",
]

FENCE_OUTCOMES = {"completed": "completed", "failed": "failed", "refused": "was refused"}
# A saga's containers, made on first use: most sagas in flight never touch most of them, and
# empty ones would cost ~0.6 KB per saga (see SagaState).
_LAZY: Final = {"running": dict, "done": list, "results": dict, "raws": dict}
_T = TypeVar("_T")


def made_on_first_use(owner: object, name: str, makers: dict[str, Callable[[], Any]]) -> Any:
    """The container ``name`` of ``owner``, made now by ``makers[name]`` because nothing used
    it before (a ``__getattr__``: most sagas in flight never need most of their containers)."""
    make = makers.get(name)
    if make is None:
        raise AttributeError(f"{type(owner).__name__!r} object has no attribute {name!r}")
    value = make()
    object.__setattr__(owner, name, value)
    return value


class Seldom(Generic[_T]):
    """A field that most sagas in flight never set (a failure's reason, a compensation's
    timers, a parent): kept in its owner's ``seldom`` dict, made on the first write of a value
    other than the default, so it costs no slot of its own (8 B per saga, set or not). Reads
    and writes look like a plain attribute's."""

    __slots__ = ("default", "name")

    def __init__(self, default: _T) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, owner: None, kind: type[Any]) -> Seldom[_T]: ...
    @overload
    def __get__(self, owner: object, kind: type[Any] | None = None) -> _T: ...
    def __get__(self, owner: Any, kind: Any = None) -> Any:
        if owner is None:
            return self
        seldom = owner.seldom
        return self.default if seldom is None else seldom.get(self.name, self.default)

    def __set__(self, owner: Any, value: _T) -> None:
        seldom = owner.seldom
        if seldom is None:
            if value == self.default:
                return
            seldom = owner.seldom = {}
        seldom[self.name] = value


class SeldomMade(Seldom[_T]):
    """A container most sagas in flight never use (a compensation's stack, signals): made on
    its first read and kept in the owner's ``seldom`` dict (see :class:`Seldom`)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], _T]) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # never read: made instead
        self.make = make

    def __get__(self, owner: Any, kind: Any = None) -> Any:
        if owner is None:
            return self
        seldom = owner.seldom
        if seldom is None:
            seldom = owner.seldom = {}
        value = seldom.get(self.name)
        if value is None:
            value = seldom[self.name] = self.make()
        return value

    def __set__(self, owner: Any, value: _T) -> None:
        seldom = owner.seldom
        if seldom is None:
            seldom = owner.seldom = {}
        seldom[self.name] = value


@dataclass(slots=True)
class Attempt:
    """An action of the current stage (a lone step, or a member of a parallel group) that has
    not answered for good: in flight, or waiting to retry."""

    attempt: int
    deadline: float = 0.0  # its schedule deadline (journaled with its StepStarted)
    retry_due: float = 0.0
    began: float = 0.0  # runtime only, never journaled: when its handler began
    waiting: bool = False  # a Sleep or WaitFor step: no command, the saga itself waits
    wake_due: float = 0.0  # when its sleep ends or its wait times out (0: not set, or never)

    @property
    def in_flight(self) -> bool:
        """Its command is out and unanswered (so its effect is unknown)."""
        return self.retry_due == 0.0 and not self.waiting


@dataclass(slots=True)
class SagaState:
    """One saga instance. ``running`` holds the current stage's actions not answered for good
    (one entry per member of a parallel group); ``step``, ``kind``, ``attempt`` and the
    scalar timers describe the compensation under way (``kind`` is ``action`` before one
    starts, ``step`` then the last action started). ``stack`` holds the steps to compensate,
    the next one last.

    Lean, as a runtime keeps one per saga in flight (measured by ``bench.resources``): its
    containers ``running`` to ``raws`` are made on first use, and what most sagas never set
    (a failure's, a compensation's, a queue's fields) is :class:`Seldom`: kept in ``seldom``,
    a dict made only for a saga that sets one (~0.2 KB more for such a saga, 0.12 KB less for
    every other). ``past_pivot`` and ``parent``, read at every step, stay plain fields."""

    saga_id: str
    definition: Saga
    mode: str
    input: Any  # as handlers get it; its encoding is in SagaStarted only (nothing reads it here)
    digest: int | str  # its input's digest, as digest_key keeps it
    status: SagaStatus = SagaStatus.RUNNING
    step: str = ""
    kind: str = ACTION
    attempt: int = 0
    running: dict[str, Attempt] = field(init=False)
    done: list[str] = field(init=False)
    results: dict[str, Any] = field(init=False)
    raws: dict[str, msgspec.Raw] = field(init=False)  # results as journaled
    past_pivot: bool = False  # the pivot succeeded: the saga must complete
    parent: str = ""  # a child saga's parent (see sagas.children)
    seq: int = 0
    # Runtime only, never journaled: started here and every decision so far followed from a
    # participant's success (see actors.recomputable); such decisions need not wait for the disk.
    plain: bool = False
    seldom: dict[str, Any] | None = None  # the Seldom fields set, by name

    attempt_base = Seldom(0)  # compensation attempts made before the latest resume
    deadline = Seldom(0.0)
    retry_due = Seldom(0.0)  # the compensation's
    began = Seldom(0.0)  # runtime only, never journaled: when the awaited compensation began
    due_by = Seldom(0.0)  # the saga's deadline (wall clock, 0: none), journaled at its start
    overdue = Seldom(False)
    reason = Seldom("")
    failure = Seldom("")  # the reason a stuck saga had before, given back by a resume
    last_error = Seldom("")
    queue = Seldom((0, 0))  # (priority, ticket) of its SagaQueued, if it had to wait
    started_at = Seldom(0.0)  # runtime only: when a saga that had to wait was started here
    held = Seldom(False)  # a child whose steps all succeeded, open until its parent ends
    doubt = SeldomMade[list[str]](list)  # members in doubt while a group drains
    stack = SeldomMade[list[str]](list)
    compensated = SeldomMade[list[str]](list)
    signals = SeldomMade[dict[str, list[msgspec.Raw]]](dict)  # kept, unconsumed
    signal_ids = SeldomMade[set[str]](set)  # every signal id journaled

    if not TYPE_CHECKING:  # hidden from mypy: a typo'd attribute stays an error

        def __getattr__(self, name: str) -> Any:
            return made_on_first_use(self, name, _LAZY)

    @property
    def in_flight(self) -> bool:
        """A command is out and unanswered (so its effect is unknown): an action of the
        current stage, or the compensation under way."""
        if self.status.terminal:
            return False
        return self.undoing or any(member.in_flight for member in self.running.values())

    @property
    def undoing(self) -> bool:
        """A compensation command is out and unanswered."""
        return (
            self.kind == COMPENSATION
            and self.attempt > 0
            and self.retry_due == 0.0
            and not self.status.terminal
        )

    @property
    def draining(self) -> bool:
        """A member of a parallel group failed; its siblings still in flight are awaited
        before anything is compensated."""
        return self.status is SagaStatus.COMPENSATING and self.kind == ACTION and bool(self.running)

    @property
    def retrying(self) -> bool:
        """A command waits for its retry's back-off (shown in the saga's status)."""
        return bool(self.retry_due) or any(a.retry_due for a in self.running.values())


def evolve(state: SagaState, event: SagaEvent) -> None:
    """Apply one journal event to ``state`` (in place)."""
    if isinstance(event, SagaStarted):
        state.due_by, state.parent = event.deadline, event.parent
        # A fork's carried results: read by its steps, never in ``done`` (never compensated).
        if event.carried:
            state.results.update(event.carried)
            state.raws.update(event.carried)
        state.past_pivot = state.definition.pivot in event.carried
    elif isinstance(event, ChildDone):  # its work is done: its deadline no longer applies
        state.held, state.due_by = True, 0.0
    elif isinstance(event, StepStarted):
        waiting = state.definition.step(event.step).pause is not None
        state.running[event.step] = Attempt(event.attempt, event.deadline, waiting=waiting)
        state.step, state.kind, state.attempt = event.step, ACTION, event.attempt
    elif isinstance(event, StepSucceeded):
        state.running.pop(event.step, None)
        state.done.append(event.step)
        state.results.setdefault(event.step, event.result)
        state.raws.setdefault(event.step, event.result)
        state.past_pivot = state.past_pivot or event.step == state.definition.pivot
        pause = state.definition.step(event.step).pause
        if pause is not None and state.signals.get(pause.signal):
            state.signals[pause.signal].pop(0)  # the wait consumed the first one kept
        _drained(state)
    elif isinstance(event, SleepStarted | WaitStarted):
        if event.step in state.running:
            state.running[event.step].wake_due = event.due
    elif isinstance(event, SignalReceived):
        state.signal_ids.add(event.signal_id)
        state.signals.setdefault(event.name, []).append(event.payload)
    elif isinstance(event, StepAbandoned):
        # A business failure is recorded in the participant's inbox, so no copy of the command
        # can ever apply. After a technical error nothing is recorded, and a copy still on its
        # way (a resend, a delayed delivery) could apply later: the step is in doubt, and its
        # compensation leaves a tombstone that refuses such a copy.
        _failed(state, event, in_doubt=not event.business)
    elif isinstance(event, StepTimedOut):
        _failed(state, event, in_doubt=True)
    elif isinstance(event, SagaOverdue):
        state.overdue, state.reason = True, failure_reason(event)
        if not event.past_pivot:
            stack_for_compensation(state, in_doubt=list(state.running))
    elif isinstance(event, SagaCancelled):
        state.reason = failure_reason(event)
        # The running steps' outcomes are unknown (in flight, or waiting for a retry while an
        # earlier attempt may still run): each is compensated, or fenced if it cannot be.
        stack_for_compensation(state, in_doubt=list(state.running))
    elif isinstance(event, StepRetrying):
        member = state.running.get(event.step)
        if member is not None:
            member.retry_due, member.began = event.due, 0.0
        state.last_error = f"{event.step!r} attempt {event.attempt}: {event.error}"
    elif isinstance(event, CompensationFailed):
        state.retry_due = event.due
        state.last_error = f"{event.step!r} attempt {event.attempt}: {event.error}"
    elif isinstance(event, CompensationStarted):
        state.step, state.kind, state.attempt = event.step, COMPENSATION, event.attempt
        state.deadline, state.retry_due, state.began = event.deadline, 0.0, 0.0
    elif isinstance(event, StepCompensated):
        state.stack.remove(event.step)
        state.compensated.append(event.step)
        state.attempt_base = 0
    elif isinstance(event, StepFenced):
        state.stack.remove(event.step)
        state.attempt_base = 0
        what = FENCE_OUTCOMES.get(event.outcome, event.outcome)
        state.reason = f"{state.reason} ({event.step!r} was in flight: it {what})"
    elif isinstance(event, SagaQueued):
        state.queue = (event.priority, event.ticket)
        fold_end(state, event)
    elif isinstance(event, StepResolved):  # an operator settled a failing compensation
        state.stack.remove(event.step)
        if event.how == "compensated":
            state.compensated.append(event.step)
        state.attempt_base = 0
        fold_end(state, event)
    elif fold_end(state, event) and isinstance(event, SagaResumed):
        state.attempt_base = state.attempt  # a resume grants a fresh retry budget
    state.seq += 1


def emit(state: SagaState, events: list[SagaEvent], event: SagaEvent) -> None:
    """Apply ``event`` to ``state`` and append it to ``events`` (decide's building block)."""
    evolve(state, event)
    events.append(event)


def stack_for_compensation(state: SagaState, in_doubt: str | Sequence[str] | None) -> None:
    """Compensate the done compensable steps (the last done first), and before them the
    in-doubt steps: their compensation (a tombstone if one never ran) or, when a step has
    none, a fence (see ``StepFenced``). In-doubt members of a group go in the order of the
    definition (the last one is compensated first), so both modes undo them alike."""
    doubtful = [in_doubt] if isinstance(in_doubt, str) else list(in_doubt or ())
    state.status = SagaStatus.COMPENSATING
    done = [name for name in state.done if state.definition.step(name).compensable]
    doubt = sorted(
        {
            name
            for name in doubtful
            if name and name not in state.done and state.definition.step(name).pause is None
        },
        key=state.definition.index,
    )
    state.stack = [*done, *doubt]
    state.running.clear()
    state.doubt = []
    state.attempt, state.retry_due, state.deadline, state.began = 0, 0.0, 0.0, 0.0


def _failed(state: SagaState, event: StepAbandoned | StepTimedOut, *, in_doubt: bool) -> None:
    """A step (or a group's member) failed for good. The first failure stops the saga: no
    command is sent any more, and a member waiting to retry is in doubt (an earlier attempt
    may still run). Members in flight are awaited (see :func:`_drained`)."""
    state.running.pop(event.step, None)
    if in_doubt:
        state.doubt.append(event.step)
    if state.status is SagaStatus.RUNNING:
        state.status, state.reason = SagaStatus.COMPENSATING, failure_reason(event)
        for name, member in list(state.running.items()):
            if not member.in_flight:
                state.doubt.append(name)
                del state.running[name]
    _drained(state)


def _drained(state: SagaState) -> None:
    """Once a failed stage has no member in flight, stack what is to be compensated."""
    if state.status is SagaStatus.COMPENSATING and state.kind == ACTION and not state.running:
        stack_for_compensation(state, in_doubt=state.doubt)
