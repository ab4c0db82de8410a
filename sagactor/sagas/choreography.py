"""Choreography of a step-list saga: subscriptions derived from the definition, and routing.

In this mode nobody decides the saga's course. Each participant subscribes to the events it
reacts to (the previous stage's success, the failure or compensation downstream of its own
step) and publishes its own outcome as an event; after a technical error with attempts left
it publishes the retry it wants (``StepRetrying`` / ``CompensationFailed`` with a due time).
The dispatcher only does three things with a published event:

1. drops it if it does not fit the saga's history (a duplicate, an answer to an attempt that
   is no longer awaited, or a late success of a step already given up);
2. journals it, and recognises the end of the saga from it (last stage succeeded; nothing
   left to compensate; a compensation given up);
3. delivers it to its subscribers, journaling each delivery (``StepStarted`` /
   ``CompensationStarted``) so that history shows it and recovery can re-deliver it; a
   published retry is re-delivered when due.

Who subscribes to what is read from the folded saga state, not from a static table, because
a parallel group joins: a member's success starts the next stage only once its siblings have
succeeded too, and a member's failure starts compensating only once the siblings in flight
have answered (a sibling that then wants a retry is in doubt instead: nothing more is sent).
The routing is the machine's own :func:`~sagactor.sagas.machine.advance`, so both modes take
the same course; :func:`subscriptions` describes it as a table for the playground.

Time limits need someone outside a participant that may be blocked in a slow handler: the
dispatcher runs the same timers as the orchestrator (:func:`~sagactor.sagas.machine.begin`,
``Timeout``), so each attempt has its own deadline and is retried, or put in doubt, by the
same rule and with the same reason in both modes.

Both modes reach the same outcome under the same failures; the property tests check that.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ..messages import (
    CompensationFailed,
    SagaEvent,
    SagaStatus,
    SagaStuck,
    StepAbandoned,
    StepCompensated,
    StepFenced,
    StepRetrying,
    StepSucceeded,
)
from ..names import ACTION, COMPENSATION
from .definition import Saga
from .machine import SagaState, advance, emit

__all__ = ["Reaction", "react", "subscriptions"]


class Reaction(NamedTuple):
    """``participant`` runs ``kind`` (action or compensation) of ``step``."""

    participant: str
    kind: str
    step: str


@functools.cache
def subscriptions(definition: Saga) -> dict[tuple[str, str], tuple[Reaction, ...]]:
    """Who reacts to which event: ``(event type, step) -> reactions``, from the stages.

    A member of a parallel group joins: its ``StepSucceeded`` starts the next stage only
    when its siblings' have come too; its failure undoes the siblings that completed (or are
    in doubt) first, then the earlier steps."""
    stages = definition.stages

    def starts(stage: int) -> tuple[Reaction, ...]:
        if stage >= len(stages):
            return ()
        return tuple(Reaction(s.participant, ACTION, s.name) for s in stages[stage])

    def undo_below(stage: int) -> tuple[Reaction, ...]:
        for earlier in reversed(stages[:stage]):
            undo = [s for s in earlier if s.compensable]
            if undo:
                return tuple(Reaction(s.participant, COMPENSATION, s.name) for s in undo)
        return ()

    table: dict[tuple[str, str], tuple[Reaction, ...]] = {("SagaStarted", ""): starts(0)}
    for number, stage in enumerate(stages):
        for step in stage:
            siblings = tuple(
                Reaction(s.participant, COMPENSATION, s.name)
                for s in stage
                if s is not step and s.compensable
            )
            if number + 1 < len(stages):
                table[("StepSucceeded", step.name)] = starts(number + 1)
            table[("StepFailed", step.name)] = siblings or undo_below(number)
            # In doubt (a technical failure; a timeout): its own compensation first, or its
            # fence when it has none (the participant records whether it ran, refuses copies).
            table[("StepTimedOut", step.name)] = (
                Reaction(step.participant, COMPENSATION, step.name),
            )
            undone = "StepCompensated" if step.compensable else "StepFenced"
            table[(undone, step.name)] = undo_below(number)
    return table


def react(state: SagaState, event: SagaEvent, now: float) -> list[SagaEvent]:
    """Journal-ready events for a published ``event``: itself, the end if it is one, and the
    deliveries to its subscribers. Empty when the event does not fit."""
    if not _fits(state, event):
        return []
    if isinstance(event, StepRetrying) and state.status is not SagaStatus.RUNNING:
        # A sibling failed: nothing is sent any more, so this member is in doubt, as the
        # orchestrator would have it.
        event = StepAbandoned(
            step=event.step, attempt=event.attempt, reason=event.error, business=False
        )
    events: list[SagaEvent] = []
    emit(state, events, event)
    if isinstance(event, CompensationFailed):
        if not event.due:
            tries = event.attempt - state.attempt_base
            reason = f"compensation of {event.step!r} failed after {tries} attempt(s): "
            emit(state, events, SagaStuck(reason=reason + event.error))
    elif not isinstance(event, StepRetrying):
        advance(state, events, now)
    return events


def _fits(state: SagaState, event: SagaEvent) -> bool:
    """Whether ``event`` answers what the saga awaits. A success counts from any attempt (the
    inbox applied it once); a failure or a retry only from the awaited attempt, as in
    orchestration."""
    if state.status.terminal:
        return False
    step = getattr(event, "step", None)
    if isinstance(event, StepSucceeded | StepAbandoned | StepRetrying):
        member = state.running.get(step or "")
        if member is None:
            return False
        if isinstance(event, StepSucceeded):
            return True
        return event.attempt == member.attempt and member.in_flight
    if isinstance(event, StepCompensated | StepFenced | CompensationFailed):
        undoing = state.status is SagaStatus.COMPENSATING and state.kind == COMPENSATION
        awaited = getattr(event, "attempt", state.attempt) == state.attempt and not state.retry_due
        return (
            undoing
            and step == state.step
            and (awaited or not isinstance(event, CompensationFailed))
        )
    return False
