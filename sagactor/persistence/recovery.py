"""Replay: rebuild saga state machines from their journal streams.

Recovery is deliberately small: it folds each in-flight saga's events and hands the states to
the coordinator, which resumes them through the normal path (:func:`~sagactor.sagas.machine.
pending`). Resuming twice is therefore harmless: a repeated command is answered from the
participant's inbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import IncompatibleDefinition, JournalCorrupt, UnknownSagaType
from ..messages import SagaEvent, SagaStarted
from ..sagas.definition import Saga
from ..sagas.machine import SagaState, evolve
from ..sagas.native import Choreography, NativeState
from .journal import Journal, Record

__all__ = ["InFlight", "decode_saga_events", "find_in_flight", "rebuild", "saga_stream"]

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


@dataclass
class InFlight:
    """What recovery found: sagas to resume, and those it cannot (named, never skipped)."""

    states: list[SagaState | NativeState] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)
    incompatible: dict[str, str] = field(default_factory=dict)

    def raise_if_blocked(self) -> None:
        if self.unknown:
            raise UnknownSagaType(self.unknown)
        if self.incompatible:
            raise IncompatibleDefinition(self.incompatible)


def find_in_flight(journal: Journal, definitions: Mapping[str, Saga | Choreography]) -> InFlight:
    """Every saga whose stream has no terminal event, rebuilt (or listed if it cannot be)."""
    found = InFlight()
    for stream in journal.open_streams("saga/"):
        saga_id = stream.removeprefix("saga/")
        events = decode_saga_events(journal, journal.read(stream))
        started = events[0] if events else None
        if not isinstance(started, SagaStarted):
            raise JournalCorrupt(journal.path, f"{stream} does not begin with SagaStarted")
        definition = definitions.get(started.saga)
        if definition is None:
            found.unknown[saga_id] = started.saga
        elif definition.version != started.version:
            found.incompatible[saga_id] = (
                f"started under {started.saga!r} version {started.version}, "
                f"registered version is {definition.version}"
            )
        else:
            found.states.append(rebuild(saga_id, definition, events))
    return found
