"""How a saga stream says a saga failed, ended or was resumed: said once, for every fold.

The machine's ``evolve``, the native state and the definition-free summary
(:mod:`~sagactor.sagas.fold`) each fold a saga's stream; the reasons they give and what an end
means come from here, so a saga reads the same live, after a restart, and in the playground.
"""

from __future__ import annotations

import time
from typing import Protocol

from ..messages import (
    SagaAdmitted,
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaDead,
    SagaEvent,
    SagaOverdue,
    SagaQueued,
    SagaResumed,
    SagaRevived,
    SagaStatus,
    SagaStuck,
    StepAbandoned,
    StepResolved,
    StepTimedOut,
)
from ..names import NATIVE, SCHEDULE

__all__ = ["Ending", "failure_reason", "fold_end"]


class Ending(Protocol):
    """What every fold of a saga stream keeps of its end (see :func:`fold_end`)."""

    mode: str
    status: SagaStatus
    reason: str
    failure: str


def failure_reason(event: StepAbandoned | StepTimedOut | SagaCancelled | SagaOverdue) -> str:
    """Why a saga turns to compensating (or, past its pivot, is overdue), as every fold of its
    stream says it."""
    if isinstance(event, SagaOverdue):
        late = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.deadline))
        if event.past_pivot:
            return f"overdue: its deadline passed at {late} UTC, after its pivot (it completes)"
        return f"its deadline passed at {late} UTC"
    if isinstance(event, StepAbandoned):
        return f"step {event.step!r} failed: {event.reason}"
    if isinstance(event, StepTimedOut):
        what = "was not started in time" if event.limit == SCHEDULE else "timed out"
        return f"step {event.step!r} {what} (attempt {event.attempt})"
    return event.reason


def fold_end(state: Ending, event: SagaEvent) -> bool:
    """Apply an end (completed, compensated, stuck, dead), a resume, a revival, or a queue's
    wait for a slot under ``max_in_flight`` (queued, admitted) to ``state``;
    False for any other event. The one place that says what an end means, for every fold of a
    saga stream: a stuck or dead saga keeps the reason it had (``failure``), which its resume
    or revival gives back; a resumed native choreography runs again, a resumed step-list saga
    compensates again; a revived one goes back to the status it had."""
    if isinstance(event, SagaCompleted):
        state.status = SagaStatus.COMPLETED
    elif isinstance(event, SagaCompensated):
        state.status, state.reason = SagaStatus.COMPENSATED, event.reason
    elif isinstance(event, SagaStuck):
        state.status, state.failure, state.reason = SagaStatus.STUCK, state.reason, event.reason
    elif isinstance(event, SagaResumed):
        again = SagaStatus.RUNNING if state.mode == NATIVE else SagaStatus.COMPENSATING
        state.status, state.reason = again, state.failure
    elif isinstance(event, StepResolved):  # settled by hand: compensating the rest, as before
        state.status, state.reason = SagaStatus.COMPENSATING, state.failure
    elif isinstance(event, SagaDead):  # parked; SagaRevived gives back where it stood
        state.status, state.failure, state.reason = SagaStatus.DEAD, state.reason, event.reason
    elif isinstance(event, SagaRevived):
        state.status, state.reason = SagaStatus(event.status), state.failure
    elif isinstance(event, SagaQueued | SagaAdmitted):  # waits for a slot; got one
        state.status = SagaStatus.QUEUED if isinstance(event, SagaQueued) else SagaStatus.RUNNING
    else:
        return False
    return True
