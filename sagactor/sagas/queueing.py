"""A saga that waits for a slot under its definition's ``max_in_flight``: its events. Pure.

A start past the limit is journaled as ``SagaStarted`` then ``SagaQueued`` (its priority and
its ticket, the order it was queued in): durable, so the caller's start is acknowledged, but
no step starts. When a slot frees, ``SagaAdmitted`` and its first stage's events are journaled
together, in one commit, before any command goes out: after a crash either the saga is still
queued (and admitted again, once) or it is running (and resumed as any running saga); it is
never started twice. Which saga gets which slot is decided by
:class:`~sagactor.actors.admission.Admission`; this module only says what each decision writes.
"""

from __future__ import annotations

from typing import Any

from ..messages import (
    SagaAdmitted,
    SagaCancelled,
    SagaCompensated,
    SagaEvent,
    SagaQueued,
    SagaStatus,
)
from .definition import Saga
from .machine import start_stage
from .starts import new_saga
from .state import SagaState, emit

__all__ = ["admit", "cancel_queued", "start_queued"]


def start_queued(
    definition: Saga,
    saga_id: str,
    mode: str,
    value: Any,
    raw: bytes,
    digest: str,
    now: float,
    *,
    priority: int,
    ticket: int,
) -> tuple[SagaState, list[SagaEvent]]:
    """A new saga that must wait for a slot: started (the same event a free start writes,
    its ``deadline`` counted from now, so the wait counts toward it), then queued."""
    state, events = new_saga(definition, saga_id, mode, value, raw, digest, now)
    state.started_at = now  # its wait is counted from here (see admit)
    emit(state, events, SagaQueued(priority=priority, ticket=ticket))
    return state, events


def admit(state: SagaState, now: float) -> list[SagaEvent]:
    """A queued saga's slot came: admitted, and its first stage starts (as ``start`` would
    have started it, sleeps and waits included)."""
    events: list[SagaEvent] = []
    if state.status is not SagaStatus.QUEUED:
        return events
    waited = max(0.0, now - state.started_at) if state.started_at else 0.0
    emit(state, events, SagaAdmitted(waited=round(waited, 6)))
    start_stage(state, 0, now, events)
    return events


def cancel_queued(state: SagaState, reason: str) -> list[SagaEvent]:
    """A queued saga is cancelled: nothing ran, so it is compensated at once, with nothing to
    undo."""
    events: list[SagaEvent] = []
    if state.status is SagaStatus.QUEUED:
        emit(state, events, SagaCancelled(reason=reason))
        emit(state, events, SagaCompensated(reason=state.reason))
    return events
