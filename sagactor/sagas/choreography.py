"""Choreography of a step-list saga: subscriptions derived from the definition, and routing.

In this mode nobody decides the saga's course. Each participant subscribes to the events it
reacts to (the previous step's success, the failure or compensation downstream of its own
step) and publishes its own outcome as an event, retrying technical errors itself. The
dispatcher only does three things with a published event:

1. drops it if it does not fit the saga's history (a duplicate, or a late success of a step
   already given up: event ids are (saga, step, kind), so a repeat is recognised);
2. journals it, and recognises the end of the saga from it (last step succeeded; the first
   compensable step compensated; a compensation given up);
3. delivers it to the subscribers from the static table :func:`subscriptions`, journaling each
   delivery (``StepStarted`` / ``CompensationStarted``) so that history shows it and recovery can
   re-deliver it.

Because the table is derived from the same definition the orchestrator follows, both modes
reach the same outcome under the same failures; the property tests check exactly that.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import msgspec

from ..messages import (
    CompensationFailed,
    CompensationStarted,
    SagaCompensated,
    SagaCompleted,
    SagaEvent,
    SagaStatus,
    SagaStuck,
    StepCompensated,
    StepFailed,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
)
from .definition import Saga
from .machine import ACTION, COMPENSATION, SagaState, emit

__all__ = ["Published", "Reaction", "react", "subscriptions"]


class Published(msgspec.Struct, frozen=True):
    """A participant's outcome event, sent to the dispatcher once its outbox committed."""

    saga_id: str
    event: SagaEvent
    result: Any = None


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
        table[("StepTimedOut", step.name)] = (
            (Reaction(step.participant, COMPENSATION, step.name),)
            if step.compensable
            else undo_below(index)
        )
        if step.compensable:
            table[("StepCompensated", step.name)] = undo_below(index)
    return table


def react(state: SagaState, event: SagaEvent, now: float) -> list[SagaEvent]:
    """Journal-ready events for a published (or timer) ``event``: itself, the end if it is
    one, and the deliveries to its subscribers. Empty when the event does not fit."""
    if not _fits(state, event):
        return []
    events: list[SagaEvent] = []
    emit(state, events, event)
    end = _end(state, event)
    if end is not None:
        emit(state, events, end)
        return events
    step = getattr(event, "step", "")
    kind = type(event).__name__
    if isinstance(event, StepFailed) and not event.business:
        kind = "StepTimedOut"  # in doubt, like a timeout: its own compensation runs first
    for reaction in subscriptions(state.definition).get((kind, step), ()):
        timeout = state.definition.step(reaction.step).timeout
        deadline = now + timeout if timeout else 0.0
        if reaction.kind == ACTION:
            emit(state, events, StepStarted(step=reaction.step, attempt=1, deadline=deadline))
        else:
            emit(
                state, events, CompensationStarted(step=reaction.step, attempt=1, deadline=deadline)
            )
    return events


def _fits(state: SagaState, event: SagaEvent) -> bool:
    if state.status.terminal:
        return False
    if isinstance(event, StepSucceeded | StepFailed | StepTimedOut):
        return (
            state.status is SagaStatus.RUNNING and state.kind == ACTION and event.step == state.step
        )
    if isinstance(event, StepCompensated | CompensationFailed):
        return (
            state.status is SagaStatus.COMPENSATING
            and state.kind == COMPENSATION
            and event.step == state.step
        )
    return False


def _end(state: SagaState, event: SagaEvent) -> SagaEvent | None:
    if isinstance(event, StepSucceeded) and event.step == state.definition.steps[-1].name:
        return SagaCompleted()
    if isinstance(event, StepFailed | StepTimedOut | StepCompensated) and not state.stack:
        return SagaCompensated(reason=state.reason)
    if isinstance(event, CompensationFailed):
        return SagaStuck(
            reason=f"compensation of {event.step!r} failed after {event.attempt} attempt(s): "
            f"{event.error}"
        )
    return None
