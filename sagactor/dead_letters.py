"""Dead letters: a saga whose handling kills the process again and again is parked, not retried.

A poison saga (a handler that calls ``os._exit``, segfaults, or raises ``SystemExit`` and so
ends its runtime) would otherwise crash every ``Runtime.open`` of its journal: recovery
resends its command, the handler kills the process, and so on forever. So recovery counts,
durably, how many times in a row it resumed each saga without the saga making progress:

* When recovery resumes a saga that has work out (a command or compensation it resends, or a
  native flow it re-dispatches), it appends a ``RecoveryAttempted`` event to the saga's
  stream, in one group commit for all of them. Any other event the saga journals afterwards
  is progress. The count is the run of ``RecoveryAttempted`` records at the end of the stream,
  read from records recovery reads anyway: the normal path writes and reads nothing more.
* A saga whose count reached ``max_recovery_attempts`` is parked instead: a final
  ``SagaDead`` event with why (what was out, its last journaled error). It is not resumed
  again at any open; ``Runtime.dead_letters()`` lists it, its status is ``dead``, and
  ``Runtime.retry_dead(id)`` (after a code fix) journals ``SagaRevived`` and resumes it.

A saga waiting for a retry back-off has nothing out at recovery and is not counted. What it
cannot tell apart: a saga that is innocent but was in flight, without progress, at each of
those crashes (say queued behind the poison in the same participant's mailbox). Recovery
resends the sagas with the fewest attempts first, so such a saga usually progresses before
the poison runs again; ``retry_dead`` brings back one that was parked all the same.
"""

from __future__ import annotations

import logging

from . import clock
from .codec import encode_event
from .errors import SagaQuarantined, UnknownSaga
from .messages import (
    FINAL_EVENTS,
    Outcome,
    RecoveryAttempted,
    SagaDead,
    SagaEvent,
    SagaRevived,
    event_name,
)
from .names import SAGA_PREFIX, saga_id_of, saga_stream
from .persistence.journal import Journal, Record
from .persistence.recovery import decode_saga_events, load_saga
from .sagas.fold import summarize
from .sagas.machine import SagaState, evolve
from .sagas.native import NativeState
from .sagas.versions import Definitions

__all__ = ["DEFAULT_MAX_RECOVERY_ATTEMPTS", "DeadLetters"]

logger = logging.getLogger("sagactor")

DEFAULT_MAX_RECOVERY_ATTEMPTS = 5
_DEAD = event_name(SagaDead(reason="", attempts=0, was=""))

State = SagaState | NativeState


class DeadLetters:
    """Counts recoveries per in-flight saga and parks the ones that never progress.

    ``limit`` None turns it off: recovery then writes nothing and parks nothing.
    """

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"max_recovery_attempts must be at least 1 or None, not {limit}")
        self.limit = limit

    def screen(
        self, journal: Journal, states: list[State], stalled: dict[str, int]
    ) -> tuple[list[State], list[str]]:
        """Note one more recovery attempt for each saga with work out, park those that
        reached the limit; returns the sagas to resume (fewest attempts first) and the ids
        parked. One group commit for all."""
        if self.limit is None:
            return states, []
        resume: list[State] = []
        parked: list[str] = []
        records: list[Record] = []
        now = clock.now()
        for state in sorted(states, key=lambda s: stalled.get(s.saga_id, 0)):
            if not _has_work_out(state):
                resume.append(state)
                continue
            seen = stalled.get(state.saga_id, 0)
            event: SagaEvent
            if seen >= self.limit:
                event = SagaDead(reason=_why(state, seen), attempts=seen, was=str(state.status))
                parked.append(state.saga_id)
                logger.error("saga %s parked as a dead letter: %s", state.saga_id, event.reason)
            else:
                event = RecoveryAttempted(attempt=seen + 1)
                resume.append(state)
            records.append(_record(state, event, now))
        if records:
            journal.append_and_wait(records)
        return resume, parked

    def revive(self, journal: Journal, saga_id: str, definitions: Definitions) -> State | None:
        """Journal ``SagaRevived`` for a dead letter and return it loaded, to resume; None if
        the saga is not dead.

        Raises:
            UnknownSaga: No saga has that id.
            SagactorError: The error that keeps it from loading (its definition removed...);
                it stays dead.
        """
        records = journal.read(saga_stream(saga_id))
        if not records:
            raise UnknownSaga(saga_id)
        if records[-1].type != _DEAD:
            return None
        try:
            state = load_saga(journal, saga_id, records, definitions)
        except SagaQuarantined as error:
            raise error.cause from error
        dead = decode_saga_events(journal, records[-1:])[0]
        assert isinstance(dead, SagaDead)
        journal.append_and_wait([_record(state, SagaRevived(status=dead.was), clock.now())])
        logger.warning("dead letter %s revived by an operator", saga_id)
        return state

    @staticmethod
    def listing(journal: Journal) -> dict[str, Outcome]:
        """Every parked saga, by id, with its outcome (status ``dead``, reason: why)."""
        found: dict[str, Outcome] = {}
        for stream, last in journal.latest(journal.streams(SAGA_PREFIX)).items():
            if last.type == _DEAD:
                saga_id = saga_id_of(stream) or stream
                events = decode_saga_events(journal, journal.read(stream))
                found[saga_id] = summarize(saga_id, events).outcome()
        return found


def _has_work_out(state: State) -> bool:
    """Recovery resends something of it at once (what a poison handler would die on)."""
    if isinstance(state, NativeState):
        return not state.status.terminal
    return state.in_flight


def _why(state: State, attempts: int) -> str:
    what = f"{attempts} recoveries in a row saw it make no progress"
    if isinstance(state, NativeState):
        out = f"the last event dispatched was {state.last_event or 'its start'}"
        return f"{what} ({out})"
    out = f"{state.kind} {state.step!r} attempt {state.attempt} was out each time"
    error = f"; last error: {state.last_error}" if state.last_error else ""
    return f"{what} ({out}{error})"


def _record(state: State, event: SagaEvent, now: float) -> Record:
    """``event`` applied to ``state`` (so its seq follows the stream) and as a record."""
    if isinstance(state, NativeState):
        state.evolve(event)
    else:
        evolve(state, event)
    name = event_name(event)
    data = encode_event(event)
    return Record(saga_stream(state.saga_id), state.seq, name, data, now, "", name in FINAL_EVENTS)
