"""A saga's state and its fold: :func:`evolve` applies one journal event. Pure.

Folding a saga's journal with :func:`evolve` rebuilds the state, which is all recovery needs;
:func:`~sagactor.sagas.machine.decide` emits events through :func:`emit`, which applies each as
it goes, so a live saga and a recovered one pass through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..messages import (
    CompensationFailed,
    CompensationStarted,
    SagaCancelled,
    SagaEvent,
    SagaOverdue,
    SagaResumed,
    SagaStarted,
    SagaStatus,
    StepAbandoned,
    StepCompensated,
    StepFenced,
    StepResolved,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
)
from ..names import ACTION, COMPENSATION
from .definition import Saga
from .endings import failure_reason, fold_end

__all__ = ["SagaState", "emit", "evolve", "stack_for_compensation"]

FENCE_OUTCOMES = {"completed": "completed", "failed": "failed", "refused": "was refused"}


@dataclass(slots=True)
class SagaState:
    """One saga instance. ``stack`` holds the steps to compensate, the next one last."""

    saga_id: str
    definition: Saga
    mode: str
    input: Any
    input_raw: bytes
    digest: str
    status: SagaStatus = SagaStatus.RUNNING
    step: str = ""
    kind: str = ACTION
    attempt: int = 0
    attempt_base: int = 0  # compensation attempts made before the latest resume
    deadline: float = 0.0
    retry_due: float = 0.0
    began: float = 0.0  # runtime only, never journaled: when the awaited handler began
    done: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    raws: dict[str, msgspec.Raw] = field(default_factory=dict)  # results as journaled
    past_pivot: bool = False  # the pivot succeeded: the saga must complete
    due_by: float = 0.0  # the saga's deadline (wall clock, 0: none), journaled at its start
    overdue: bool = False
    stack: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    reason: str = ""
    failure: str = ""  # the reason a stuck saga had before, given back by a resume
    last_error: str = ""
    seq: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def in_flight(self) -> bool:
        """A command is out and unanswered (so its effect is unknown)."""
        return self.attempt > 0 and self.retry_due == 0.0 and not self.status.terminal


def evolve(state: SagaState, event: SagaEvent) -> None:
    """Apply one journal event to ``state`` (in place)."""
    if isinstance(event, SagaStarted):
        state.due_by = event.deadline
    elif isinstance(event, StepStarted):
        state.step, state.kind, state.attempt = event.step, ACTION, event.attempt
        state.deadline, state.retry_due, state.began = event.deadline, 0.0, 0.0
    elif isinstance(event, StepSucceeded):
        state.done.append(event.step)
        state.results.setdefault(event.step, event.result)
        state.raws.setdefault(event.step, event.result)
        state.past_pivot = state.past_pivot or event.step == state.definition.pivot
    elif isinstance(event, StepAbandoned):
        state.reason = failure_reason(event)
        # A business failure is recorded in the participant's inbox, so no copy of the command
        # can ever apply. After a technical error nothing is recorded, and a copy still on its
        # way (a resend, a delayed delivery) could apply later: the step is in doubt, and its
        # compensation leaves a tombstone that refuses such a copy.
        stack_for_compensation(state, in_doubt=None if event.business else event.step)
    elif isinstance(event, StepTimedOut):
        state.reason = failure_reason(event)
        stack_for_compensation(state, in_doubt=event.step)
    elif isinstance(event, SagaOverdue):
        state.overdue, state.reason = True, failure_reason(event)
        if not event.past_pivot:
            stack_for_compensation(state, in_doubt=state.step)
    elif isinstance(event, SagaCancelled):
        state.reason = failure_reason(event)
        # The current step's outcome is unknown (in flight, or waiting for a retry while an
        # earlier attempt may still run): it is compensated, or fenced if it cannot be.
        stack_for_compensation(state, in_doubt=state.step)
    elif isinstance(event, StepRetrying | CompensationFailed):
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


def stack_for_compensation(state: SagaState, in_doubt: str | None) -> None:
    """Compensate the done compensable steps, and first the in-doubt step: its compensation
    (a tombstone if it never ran) or, when it has none, a fence (see ``StepFenced``)."""
    state.status = SagaStatus.COMPENSATING
    done = [name for name in state.done if state.definition.step(name).compensable]
    state.stack = [*done, in_doubt] if in_doubt and in_doubt not in state.done else done
    state.attempt, state.retry_due, state.deadline, state.began = 0, 0.0, 0.0, 0.0
