"""One fold per saga stream: a saga's journaled events back into what they describe. Pure.

* :func:`rebuild`: the live state (a :class:`~sagactor.sagas.machine.SagaState` or a
  :class:`~sagactor.sagas.native.NativeState`) under the saga's definition, the machine's own
  ``evolve`` applied to each event: what recovery, a resume and a failed commit's reload run.
* :func:`summarize`: what the events say without any definition (status, reason, results,
  where it stands), so a saga that finished under a removed definition stays readable: the
  runtime's status of a quarantined or finished saga, the start that reuses an id, and the
  playground's listings all read it.

Both take their reasons and what an end means from :mod:`~sagactor.sagas.endings`, so every
reader says the same.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ..messages import (
    CompensationFailed,
    CompensationStarted,
    EventDispatched,
    Outcome,
    SagaCancelled,
    SagaEvent,
    SagaOverdue,
    SagaStarted,
    SagaStatus,
    StepAbandoned,
    StepCompensated,
    StepResolved,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
)
from ..names import ACTION, COMPENSATION, NATIVE
from .definition import Choreography, Saga
from .endings import failure_reason, fold_end
from .inputs import digest_key
from .machine import SagaState, evolve
from .native import NativeState
from .state import Seldom, SeldomMade, made_on_first_use

__all__ = ["Summary", "rebuild", "summarize"]

# A summary's containers, made on first use: the journal keeps one summary per saga in flight
# (see persistence.summaries), most of them with nothing in these yet.
_LAZY: Final = {"done": list, "results": dict}


def rebuild(
    saga_id: str, definition: Saga | Choreography, events: list[SagaEvent]
) -> SagaState | NativeState:
    """The state a saga had after ``events`` (the first must be its ``SagaStarted``).

    Raises:
        msgspec.DecodeError: The journaled input does not decode as the definition's type.
    """
    started = events[0]
    assert isinstance(started, SagaStarted)
    if isinstance(definition, Choreography):
        first = msgspec.msgpack.decode(started.input, type=definition.start)
        native = NativeState(saga_id, definition, first, digest_key(started.digest))
        for event in events:
            native.evolve(event)
        return native
    value: Any = msgspec.msgpack.decode(started.input, type=definition.input_type or Any)
    state = SagaState(saga_id, definition, started.mode, value, digest_key(started.digest))
    for event in events:
        evolve(state, event)
    return state


@dataclass(slots=True)
class Summary:
    """A saga as its own events describe it, definition-free: enough for its status and
    outcome, to judge a start that reuses its id, and to say where it stands.

    Lean, as the journal keeps one per saga in flight: its containers are made on first use,
    what most sagas never set is :class:`~sagactor.sagas.state.Seldom` (no slot of its own),
    and the names it reads (saga, mode, step) are interned, so every saga shares one copy."""

    saga_id: str
    saga: str = ""
    version: int = 0
    mode: str = ""
    digest: str = ""
    status: SagaStatus = SagaStatus.RUNNING
    step: str = ""  # the step (action or compensation) last sent
    kind: str = ""
    attempt: int = 0
    done: list[str] = field(init=False)
    results: dict[str, Any] = field(init=False)
    seldom: dict[str, Any] | None = None  # the Seldom fields set, by name

    reason = Seldom("")
    failure = Seldom("")  # the reason before a stuck compensation's, restored by a resume
    retry_due = Seldom(0.0)
    last_error = Seldom("")
    compensated = SeldomMade[list[str]](list)
    dispatched = SeldomMade[list[str]](list)
    last_event = Seldom("")  # native choreography: the last event dispatched, and its publisher

    if not TYPE_CHECKING:  # hidden from mypy: a typo'd attribute stays an error

        def __getattr__(self, name: str) -> Any:
            return made_on_first_use(self, name, _LAZY)

    def apply(self, event: SagaEvent) -> None:
        """Fold one event in."""
        if isinstance(event, SagaStarted):
            self.saga, self.version = sys.intern(event.saga), event.version
            self.mode, self.digest = sys.intern(event.mode), event.digest
            if event.carried:
                self.results.update(event.carried)  # a fork's, from its origin
        elif isinstance(event, StepStarted | CompensationStarted):
            self.kind = ACTION if isinstance(event, StepStarted) else COMPENSATION
            self.step, self.attempt, self.retry_due = sys.intern(event.step), event.attempt, 0.0
        elif isinstance(event, StepSucceeded):
            self.done.append(event.step)
            self.results.setdefault(event.step, event.result)
        elif isinstance(event, StepAbandoned | StepTimedOut | SagaCancelled):
            # The first failure says why; a group's siblings may fail after it while drained.
            if self.status is SagaStatus.RUNNING:
                self.status, self.reason = SagaStatus.COMPENSATING, failure_reason(event)
        elif isinstance(event, SagaOverdue):
            self.reason = failure_reason(event)
            if not event.past_pivot:
                self.status = SagaStatus.COMPENSATING
        elif isinstance(event, StepRetrying | CompensationFailed):
            self.retry_due = event.due
            self.last_error = f"{event.step!r} attempt {event.attempt}: {event.error}"
        elif isinstance(event, StepCompensated):
            self.compensated.append(event.step)
        elif isinstance(event, StepResolved):
            if event.how == "compensated":
                self.compensated.append(event.step)
            fold_end(self, event)
        elif isinstance(event, EventDispatched):
            self.dispatched.append(event.event_type)
            self.last_event = f"{event.event_type} from {event.source}"
        else:
            fold_end(self, event)

    def outcome(self) -> Outcome:
        """The :class:`Outcome` the runtime reports, as ``outcome_of`` gives it for a state."""
        results: dict[str, Any]
        if self.mode == NATIVE:
            results = {"events": list(self.dispatched)}
        else:
            results = {k: msgspec.msgpack.decode(v) for k, v in self.results.items()}
        return Outcome(
            saga_id=self.saga_id,
            saga=self.saga,
            status=self.status,
            reason=self.reason,
            results=results,
            compensated=tuple(self.compensated),
        )


def summarize(saga_id: str, events: list[SagaEvent]) -> Summary:
    """Fold a saga's events into a :class:`Summary`."""
    summary = Summary(saga_id)
    for event in events:
        summary.apply(event)
    return summary
