"""Recovery: read saga streams back, and load each saga under its definition, or say why not.

Recovery is deliberately small: it folds each in-flight saga's events (the one fold,
:func:`~sagactor.sagas.fold.rebuild`) and hands the states to the coordinator, which resumes
them through the normal path (:func:`~sagactor.sagas.machine.pending`). Resuming twice is
therefore harmless: a repeated command is answered from the participant's inbox.

A saga that cannot be rebuilt (see :func:`load_saga`) is quarantined, never allowed to stop the
others (see :mod:`sagactor.quarantine`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field

import msgspec

from ..codec import decode_event
from ..errors import (
    IncompatibleDefinition,
    JournalCorrupt,
    PayloadError,
    SagactorError,
    SagaQuarantined,
    UnknownSagaType,
)
from ..messages import (
    SagaEvent,
    SagaStarted,
)
from ..names import saga_stream
from ..observe import PROGRESS_EVERY
from ..sagas.definition import Choreography, Saga
from ..sagas.fold import rebuild
from ..sagas.inputs import describe
from ..sagas.machine import SagaState
from ..sagas.native import NativeState
from ..sagas.versions import pick
from .journal import Journal, Record

__all__ = [
    "InFlight",
    "decode_saga_events",
    "find_in_flight",
    "load_saga",
    "saga_name",
    "stalls",
]

logger = logging.getLogger("sagactor")


def decode_saga_events(journal: Journal, records: list[Record]) -> list[SagaEvent]:
    events: list[SagaEvent] = []
    for record in records:
        try:
            events.append(decode_event(record.data))
        except msgspec.DecodeError as error:
            raise JournalCorrupt(
                journal.path, f"{record.stream} record {record.seq} ({record.type}): {error}"
            ) from error
    return events


def load_saga(
    journal: Journal,
    saga_id: str,
    records: list[Record],
    definitions: Mapping[str, Saga | Choreography],
) -> SagaState | NativeState:
    """The saga ``records`` hold, rebuilt under the registered definition of the name and
    version it started with (``definitions``: a :class:`~sagactor.sagas.versions.Definitions`
    holding several versions, or a plain name -> definition mapping).

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
        # Exactly the version it started under: v1 instances finish on v1 beside v2's starts.
        definition = pick(definitions, name, started.version)
        if definition == "":
            raise UnknownSagaType({saga_id: name})
        if isinstance(definition, str):
            raise IncompatibleDefinition({saga_id: definition})
        return _replay(saga_id, definition, events)
    except SagactorError as error:
        raise SagaQuarantined(saga_id, name or saga_name(records), error) from error


def saga_name(records: list[Record]) -> str:
    """The saga's name from its first record, if that one decodes ("" if not)."""
    try:
        started = decode_event(records[0].data) if records else None
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
    # saga id -> recoveries in a row that saw it make no progress (only those with some)
    stalled: dict[str, int] = field(default_factory=dict)


def find_in_flight(
    journal: Journal,
    definitions: Mapping[str, Saga | Choreography],
    progress: Callable[[int, int], object] | None = None,
    every: int = PROGRESS_EVERY,
    *,
    only: Container[str] | None = None,
) -> InFlight:
    """Every saga whose stream has no terminal event, rebuilt, or quarantined if it cannot be.

    A saga that cannot load never stops the others; an unreadable file (a damaged page, an I/O
    error) stops recovery with the journal's error. ``progress(loaded, quarantined)`` is
    called each time ``every`` more sagas are loaded. ``only``: of these streams alone (a
    background recovery's, fixed before new sagas could start).
    """
    found = InFlight()
    for stream, records in journal.read_open("saga/"):  # a few range scans, not one per saga
        if only is not None and stream not in only:
            continue
        saga_id = stream.removeprefix("saga/")
        try:
            found.states.append(load_saga(journal, saga_id, records, definitions))
        except SagaQuarantined as error:
            found.quarantined.append(error)
        else:
            attempts = stalls(records)
            if attempts:
                found.stalled[saga_id] = attempts
        loaded = len(found.states) + len(found.quarantined)
        if progress is not None and loaded % every == 0:
            progress(loaded, len(found.quarantined))
    return found


def stalls(records: list[Record]) -> int:
    """How many recoveries in a row resumed this saga without it making progress since (the
    ``RecoveryAttempted`` records that end its stream; see :mod:`sagactor.dead_letters`)."""
    count = 0
    for record in reversed(records):
        if record.type != "RecoveryAttempted":
            break
        count += 1
    return count
