"""Choreography of a step-list saga: subscriptions derived from the definition, and routing.

In this mode nobody decides the saga's course. Each participant subscribes to the events it
reacts to (the previous step's success, the failure or compensation downstream of its own
step) and publishes its own outcome as an event; after a technical error with attempts left
it publishes the retry it wants (``StepRetrying`` / ``CompensationFailed`` with a due time).
The dispatcher only does three things with a published event:

1. drops it if it does not fit the saga's history (a duplicate, an answer to an attempt that
   is no longer awaited, or a late success of a step already given up);
2. journals it, and recognises the end of the saga from it (last step succeeded; the first
   compensable step compensated; a compensation given up);
3. delivers it to the subscribers from the static table :func:`subscriptions`, journaling each
   delivery (``StepStarted`` / ``CompensationStarted``) so that history shows it and recovery can
   re-deliver it; a published retry is re-delivered when due.

Time limits need someone outside a participant that may be blocked in a slow handler: the
dispatcher runs the same timers as the orchestrator (:func:`~sagactor.sagas.machine.begin`,
``Timeout``), so each attempt has its own deadline and is retried, or put in doubt, by the
same rule and with the same reason in both modes.

Because the table is derived from the same definition the orchestrator follows, both modes
reach the same outcome under the same failures; the property tests check exactly that.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ..messages import (
    CompensationFailed,
    CompensationStarted,
    SagaCompensated,
    SagaCompleted,
    SagaEvent,
    SagaStatus,
    SagaStuck,
    StepAbandoned,
    StepCompensated,
    StepFenced,
    StepRetrying,
    StepSucceeded,
    event_name,
)
from ..names import ACTION, COMPENSATION
from .definition import Saga
from .machine import SagaState, emit, step_started

__all__ = ["Reaction", "react", "subscriptions"]


class Reaction(NamedTuple):
    """``participant`` runs ``kind`` (action or compensation) of ``step``."""

    participant: str
    kind: str
    step: str


@functools.cache
def subscriptions(definition: Saga) -> dict[tuple[str, str], tuple[Reaction, ...]]:
    """Who reacts to which event: ``(event type, step) -> reactions``, from the step list."""
    steps = definition.steps
    table: dict[tuple[str, str], tuple[Reaction, ...]] = {
        ("SagaStarted", ""): (Reaction(steps[0].participant, ACTION, steps[0].name),)
    }

    def undo_below(index: int) -> tuple[Reaction, ...]:
        for earlier in reversed(steps[:index]):
            if earlier.compensable:
                return (Reaction(earlier.participant, COMPENSATION, earlier.name),)
        return ()

    for index, step in enumerate(steps):
        if index + 1 < len(steps):
            after = steps[index + 1]
            table[("StepSucceeded", step.name)] = (Reaction(after.participant, ACTION, after.name),)
        table[("StepFailed", step.name)] = undo_below(index)
        # In doubt (a technical failure; a timeout): its own compensation first, or its fence
        # when it has none (the participant records whether it ran and refuses later copies).
        table[("StepTimedOut", step.name)] = (Reaction(step.participant, COMPENSATION, step.name),)
        undone = "StepCompensated" if step.compensable else "StepFenced"
        table[(undone, step.name)] = undo_below(index)
    return table


def react(state: SagaState, event: SagaEvent, now: float) -> list[SagaEvent]:
    """Journal-ready events for a published ``event``: itself, the end if it is one, and the
    deliveries to its subscribers. Empty when the event does not fit."""
    if not _fits(state, event):
        return []
    events: list[SagaEvent] = []
    emit(state, events, event)
    end = _end(state, event)
    if end is not None:
        emit(state, events, end)
        return events
    step = getattr(event, "step", "")
    kind = event_name(event)
    if isinstance(event, StepAbandoned) and not event.business:
        kind = "StepTimedOut"  # in doubt, like a timeout: its own compensation runs first
    for reaction in subscriptions(state.definition).get((kind, step), ()):
        if reaction.kind == ACTION:
            index = state.definition.index(reaction.step)
            emit(state, events, step_started(state, index, 1, now))
        else:
            emit(state, events, CompensationStarted(step=reaction.step, attempt=1))
    return events


def _fits(state: SagaState, event: SagaEvent) -> bool:
    """Whether ``event`` answers what the saga awaits. A success counts from any attempt (the
    inbox applied it once); a failure or a retry only from the awaited attempt, as in
    orchestration."""
    if state.status.terminal or getattr(event, "step", None) != state.step:
        return False
    awaited = getattr(event, "attempt", state.attempt) == state.attempt and not state.retry_due
    if isinstance(event, StepSucceeded | StepAbandoned | StepRetrying):
        running = state.status is SagaStatus.RUNNING and state.kind == ACTION
        return running and (awaited or isinstance(event, StepSucceeded))
    if isinstance(event, StepCompensated | StepFenced | CompensationFailed):
        undoing = state.status is SagaStatus.COMPENSATING and state.kind == COMPENSATION
        return undoing and (awaited or not isinstance(event, CompensationFailed))
    return False


def _end(state: SagaState, event: SagaEvent) -> SagaEvent | None:
    if isinstance(event, StepSucceeded) and event.step == state.definition.steps[-1].name:
        return SagaCompleted()
    if isinstance(event, StepAbandoned | StepCompensated | StepFenced) and not state.stack:
        return SagaCompensated(reason=state.reason)
    if isinstance(event, CompensationFailed) and not event.due:
        tries = event.attempt - state.attempt_base
        return SagaStuck(
            reason=f"compensation of {event.step!r} failed after {tries} attempt(s): {event.error}"
        )
    return None
