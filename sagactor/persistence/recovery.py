"""Replay: rebuild saga state machines from their journal streams; set aside those that cannot be.

Recovery is deliberately small: it folds each in-flight saga's events and hands the states to
the coordinator, which resumes them through the normal path (:func:`~sagactor.sagas.machine.
pending`). Resuming twice is therefore harmless: a repeated command is answered from the
participant's inbox.

A saga that cannot be rebuilt (see :func:`load_saga`) is quarantined, never allowed to stop the
others. Reading a saga (its status, its outcome) needs no definition: :func:`summarize` folds
its events alone, so a saga that finished under an older or removed definition stays readable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import (
    IncompatibleDefinition,
    JournalCorrupt,
    PayloadError,
    SagactorError,
    SagaQuarantined,
    UnknownSaga,
    UnknownSagaType,
)
from ..messages import (
    EventDispatched,
    Outcome,
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaEvent,
    SagaResumed,
    SagaStarted,
    SagaStatus,
    SagaStuck,
    StepCompensated,
    StepFailed,
    StepSucceeded,
    StepTimedOut,
)
from ..sagas.definition import Saga
from ..sagas.inputs import describe
from ..sagas.machine import SagaState, evolve
from ..sagas.native import Choreography, NativeState
from ..sagas.outcomes import OutcomeBoard
from .journal import Journal, Record

__all__ = [
    "InFlight",
    "Quarantine",
    "Summary",
    "decode_saga_events",
    "find_in_flight",
    "load_saga",
    "quarantined_outcome",
    "rebuild",
    "saga_stream",
    "summarize",
]

logger = logging.getLogger("sagactor")

_decoder = msgspec.msgpack.Decoder(SagaEvent)


def saga_stream(saga_id: str) -> str:
    return f"saga/{saga_id}"


def decode_saga_events(journal: Journal, records: list[Record]) -> list[SagaEvent]:
    events: list[SagaEvent] = []
    for record in records:
        try:
            events.append(_decoder.decode(record.data))
        except msgspec.DecodeError as error:
            raise JournalCorrupt(
                journal.path, f"{record.stream} record {record.seq} ({record.type}): {error}"
            ) from error
    return events


def rebuild(
    saga_id: str, definition: Saga | Choreography, events: list[SagaEvent]
) -> SagaState | NativeState:
    """The state a saga had after ``events`` (the first must be its ``SagaStarted``)."""
    started = events[0]
    assert isinstance(started, SagaStarted)
    if isinstance(definition, Choreography):
        first = msgspec.msgpack.decode(started.input, type=definition.start)
        native = NativeState(saga_id, definition, first, bytes(started.input), started.digest)
        for event in events:
            native.evolve(event)
        return native
    value: Any = msgspec.msgpack.decode(started.input, type=definition.input_type or Any)
    state = SagaState(
        saga_id, definition, started.mode, value, bytes(started.input), started.digest
    )
    for event in events:
        evolve(state, event)
    return state


def load_saga(
    journal: Journal,
    saga_id: str,
    records: list[Record],
    definitions: Mapping[str, Saga | Choreography],
) -> SagaState | NativeState:
    """The saga ``records`` hold, rebuilt under its registered definition.

    Raises:
        SagaQuarantined: It cannot be: its ``cause`` says why (an undecodable event, an unknown
            or other-version definition, an input that no longer decodes).
    """
    name = ""
    try:
        events = decode_saga_events(journal, records)
        started = events[0] if events else None
        if not isinstance(started, SagaStarted):
            raise JournalCorrupt(
                journal.path, f"{saga_stream(saga_id)} does not begin with SagaStarted"
            )
        name = started.saga
        definition = definitions.get(name)
        if definition is None:
            raise UnknownSagaType({saga_id: name})
        if definition.version != started.version:
            raise IncompatibleDefinition(
                {
                    saga_id: f"started under {name!r} version {started.version}, "
                    f"registered version is {definition.version}"
                }
            )
        return _replay(saga_id, definition, events)
    except SagactorError as error:
        raise SagaQuarantined(saga_id, name or _saga_name(records), error) from error


def _saga_name(records: list[Record]) -> str:
    """The saga's name from its first record, if that one decodes ("" if not)."""
    try:
        started = _decoder.decode(records[0].data) if records else None
    except msgspec.DecodeError:
        return ""
    return started.saga if isinstance(started, SagaStarted) else ""


def _replay(
    saga_id: str, definition: Saga | Choreography, events: list[SagaEvent]
) -> SagaState | NativeState:
    if isinstance(definition, Saga):  # a step renamed or removed without a version bump
        known = {step.name for step in definition.steps}
        named = {str(getattr(e, "step", "")) for e in events} - {""}
        unknown = sorted(named - known)
        if unknown:
            raise IncompatibleDefinition(
                {saga_id: f"its steps {unknown} are not in {definition.key} (bump the version)"}
            )
    try:
        return rebuild(saga_id, definition, events)
    except msgspec.DecodeError as error:  # only the input is decoded here
        wanted = definition.start if isinstance(definition, Choreography) else definition.input_type
        field, problem = describe(error) if isinstance(error, msgspec.ValidationError) else ("", "")
        raise PayloadError(
            "the journaled input",
            error,
            saga=definition.name,
            saga_id=saga_id,
            problem=f"does not decode as {getattr(wanted, '__name__', wanted)}",
            detail=(f"field {field!r}: " if field else "") + problem,
            field=field,
        ) from error
    except Exception as error:  # whatever it is, it must not stop the others
        raise IncompatibleDefinition(
            {saga_id: f"its events do not replay under {definition.key}: {error!r}"}
        ) from error


@dataclass
class InFlight:
    """What recovery found: sagas to resume, and those it cannot load (named, never skipped)."""

    states: list[SagaState | NativeState] = field(default_factory=list)
    quarantined: list[SagaQuarantined] = field(default_factory=list)


def find_in_flight(journal: Journal, definitions: Mapping[str, Saga | Choreography]) -> InFlight:
    """Every saga whose stream has no terminal event, rebuilt, or quarantined if it cannot be.

    A saga that cannot load never stops the others; an unreadable file (a damaged page, an I/O
    error) stops recovery with the journal's error.
    """
    found = InFlight()
    for stream, records in journal.read_open("saga/"):  # a few range scans, not one per saga
        saga_id = stream.removeprefix("saga/")
        try:
            found.states.append(load_saga(journal, saga_id, records, definitions))
        except SagaQuarantined as error:
            found.quarantined.append(error)
    return found


# -- what a saga's events say without its definition -------------------------------------------


@dataclass(slots=True)
class Summary:
    """A saga as its own events describe it, definition-free: enough for its status and
    outcome, and to judge a start that reuses its id, under any registered definitions."""

    saga_id: str
    saga: str = ""
    version: int = 0
    mode: str = ""
    digest: str = ""
    status: SagaStatus = SagaStatus.RUNNING
    reason: str = ""
    failure: str = ""  # the reason before a stuck compensation's, restored by a resume
    results: dict[str, Any] = field(default_factory=dict)
    compensated: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)

    def outcome(self) -> Outcome:
        """The :class:`Outcome` the runtime reports, as ``outcome_of`` gives it for a state."""
        results: dict[str, Any]
        if self.mode == "native":
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
    """Fold a saga's events into a :class:`Summary` (the reasons as :func:`~sagactor.sagas.
    machine.evolve` gives them)."""
    s = Summary(saga_id)
    for event in events:
        if isinstance(event, SagaStarted):
            s.saga, s.version, s.mode, s.digest = (
                event.saga,
                event.version,
                event.mode,
                event.digest,
            )
        elif isinstance(event, StepSucceeded):
            s.results.setdefault(event.step, event.result)
        elif isinstance(event, StepFailed):
            s.status, s.reason = (
                SagaStatus.COMPENSATING,
                f"step {event.step!r} failed: {event.reason}",
            )
        elif isinstance(event, StepTimedOut):
            s.status = SagaStatus.COMPENSATING
            s.reason = f"step {event.step!r} timed out (attempt {event.attempt})"
        elif isinstance(event, SagaCancelled):
            s.status, s.reason = SagaStatus.COMPENSATING, event.reason
        elif isinstance(event, StepCompensated):
            s.compensated.append(event.step)
        elif isinstance(event, EventDispatched):
            s.dispatched.append(event.event_type)
        elif isinstance(event, SagaCompleted):
            s.status = SagaStatus.COMPLETED
        elif isinstance(event, SagaCompensated):
            s.status, s.reason = SagaStatus.COMPENSATED, event.reason
        elif isinstance(event, SagaStuck):
            s.status, s.failure, s.reason = SagaStatus.STUCK, s.reason, event.reason
        elif isinstance(event, SagaResumed):
            s.status, s.reason = SagaStatus.COMPENSATING, s.failure
    return s


# -- sagas set aside -------------------------------------------------------------------------


class Quarantine:
    """In-flight sagas that could not be loaded, each with its error (thread-safe).

    An in-memory fact, found again at every open: the cause is usually fixed by a code change
    (a definition registered again, a decoder repaired), which no journal entry could record.
    Whoever waits for a quarantined saga's outcome learns it at once, as a
    :class:`SagaQuarantined` error, instead of waiting for nothing.
    """

    def __init__(self, outcomes: OutcomeBoard) -> None:
        self._lock = threading.Lock()
        self._errors: dict[str, SagaQuarantined] = {}
        self._outcomes = outcomes

    def add(self, error: SagaQuarantined) -> SagaQuarantined:
        with self._lock:
            self._errors[error.saga_id] = error
        self._outcomes.fail(error.saga_id, error)  # whoever waits learns it at once
        logger.warning("%s", error)
        return error

    def release(self, saga_id: str) -> None:
        """It loads now: forget its error (and the failed wait for its outcome)."""
        with self._lock:
            self._errors.pop(saga_id, None)

    def load(
        self, journal: Journal, saga_id: str, definitions: Mapping[str, Saga | Choreography]
    ) -> SagaState | NativeState | None:
        """The saga rebuilt, for an actor to drive; None if there is no such saga or it cannot
        be loaded (an in-flight one is then quarantined)."""
        records = journal.read(saga_stream(saga_id))
        if not records:
            return None
        try:
            return load_saga(journal, saga_id, records, definitions)
        except SagaQuarantined as error:
            if not records[-1].final:
                self.add(error)
            return None

    def retry(
        self, journal: Journal, saga_id: str, definitions: Mapping[str, Saga | Choreography]
    ) -> SagaState | NativeState:
        """Load a quarantined saga again: released if it loads, else quarantined anew (raised)."""
        try:
            state = load_saga(journal, saga_id, journal.read(saga_stream(saga_id)), definitions)
        except SagaQuarantined as error:
            raise self.add(error) from error.cause
        self.release(saga_id)
        return state

    def outcome(self, journal: Journal, saga_id: str) -> Outcome:
        """Where the saga stands by its own events (no definition needed), or ``quarantined``.

        Raises:
            UnknownSaga: No saga has that id.
            JournalCorrupt: A finished saga's events do not decode (nothing waits for it; an
                in-flight one is quarantined instead).
        """
        known = self.get(saga_id)
        if known is not None:
            return quarantined_outcome(known)
        records = journal.read(saga_stream(saga_id))
        if not records:
            raise UnknownSaga(saga_id)
        try:
            return summarize(saga_id, decode_saga_events(journal, records)).outcome()
        except JournalCorrupt as error:
            if records[-1].final:
                raise
            quarantined = SagaQuarantined(saga_id, _saga_name(records), error)
            return quarantined_outcome(self.add(quarantined))

    def get(self, saga_id: str) -> SagaQuarantined | None:
        with self._lock:
            return self._errors.get(saga_id)

    def errors(self) -> dict[str, SagaQuarantined]:
        with self._lock:
            return dict(self._errors)


def quarantined_outcome(error: SagaQuarantined) -> Outcome:
    return Outcome(
        saga_id=error.saga_id,
        saga=error.saga,
        status=SagaStatus.QUARANTINED,
        reason=str(error.cause),
    )
