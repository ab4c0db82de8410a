"""A saga's history: its own records and those it caused in every participant, as typed entries.

Reads cost the saga's records, not the journal's size (``Journal.read_caused`` is indexed).
Entries are JSON-ready: the msgpack payloads that journal events carry (a saga's input, a step's
result, a dispatched event, an inbox record's result) are decoded, to the declared types where
they are known, so ``msgspec.to_builtins(entry.event)`` works for every entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .catalog import Catalog
from .errors import UnknownSaga
from .messages import Emitted, EventDispatched, Handled, SagaStarted, StepSucceeded
from .names import ACTION, REACTION, participant_of, saga_stream
from .persistence.journal import Journal, Record
from .persistence.recovery import decode_saga_events
from .sagas.definition import Choreography, Saga
from .sagas.outcomes import decode_result, result_type

__all__ = ["HistoryEntry", "Timeline"]

_emitted = msgspec.msgpack.Decoder(list[Emitted])


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event of a saga's correlated timeline: who recorded what, when, in which order.

    ``event`` is the journaled event with its payloads decoded (a saga's ``input``, a step's
    ``result``, a published event's ``data``: typed where the runtime knows the type, plain
    data otherwise), never msgpack bytes, so ``msgspec.to_builtins(entry.event)`` works.
    """

    position: int
    ts: float
    source: str
    type: str
    event: Any
    cause: str
    saga_id: str = ""  # whose entry: the saga read, or one of its child sagas (nested)

    def to_builtins(self) -> dict[str, Any]:
        """The entry as JSON-ready builtins (the event as ``msgspec.to_builtins`` gives it)."""
        return {
            "position": self.position,
            "ts": self.ts,
            "source": self.source,
            "type": self.type,
            "event": msgspec.to_builtins(self.event),
            "cause": self.cause,
            "saga_id": self.saga_id,
        }


class Timeline:
    """Reads and types histories for one runtime (its journal, and the types its catalog knows)."""

    def __init__(self, journal: Journal, catalog: Catalog) -> None:
        self.journal = journal
        self.hosts = catalog.hosts
        self.event_types = catalog.event_types
        self.definitions = catalog.definitions
        self.result_types = catalog.result_types

    def read(self, saga_id: str) -> list[HistoryEntry]:
        """Every entry of the saga, in journal order; :class:`UnknownSaga` if it has none."""
        own = self.journal.read(saga_stream(saga_id))
        if not own:
            raise UnknownSaga(saga_id)
        theirs = [r for r in self.journal.read_caused(saga_id) if r.stream != own[0].stream]
        return self.entries(saga_id, sorted([*own, *theirs], key=lambda r: r.position), own)

    def entries(
        self, saga_id: str, records: Sequence[Record], saga_records: list[Record]
    ) -> list[HistoryEntry]:
        """Entries for ``records`` (``saga_records``: those of the saga's stream, in order).

        A natively choreographed event is shown as what it is (its type, its publisher).
        """
        decoded = decode_saga_events(self.journal, saga_records)
        definitions = {saga_id: self._definition(saga_id, decoded)}
        events = iter(decoded)
        own = saga_stream(saga_id)
        entries = []
        for r in records:
            name, kind = "coordinator", r.type
            participant = participant_of(r.stream)
            whose = saga_id
            if participant is not None:
                name = participant
                whose = _saga_of(r.cause, definitions)
                event = self._participant_event(name, r, definitions[whose])
            elif r.stream != own and not r.stream.startswith(f"{own}/"):
                continue  # a parent's record: its cause ("<parent>/<step>/...") looks like ours
            else:
                if r.stream == own:
                    event = next(events)
                else:  # a child saga's own record (its id: "<parent>/<step>"), nested
                    whose = r.stream.removeprefix(saga_stream(""))
                    event = decode_saga_events(self.journal, [r])[0]
                    if whose not in definitions:
                        definitions[whose] = self._definition(whose, [])
                if isinstance(event, EventDispatched):
                    kind, name = event.event_type, event.source
                event = self._saga_event(event, definitions[whose])
            entries.append(HistoryEntry(r.position, r.ts, name, kind, event, r.cause, whose))
        return entries

    def _definition(self, saga_id: str, events: list[Any]) -> Saga | Choreography | None:
        """The definition the saga runs under (its payloads' types), if this runtime has it."""
        if not events or not isinstance(events[0], SagaStarted):
            first = self.journal.read(saga_stream(saga_id), limit=1)
            events = decode_saga_events(self.journal, first)
        started = events[0] if events else None
        if not isinstance(started, SagaStarted):
            return None
        return self.definitions.exact(started.saga, started.version)  # v1's types for a v1 saga

    # -- decoding payloads ---------------------------------------------------------------------

    def _saga_event(self, event: Any, definition: Saga | Choreography | None) -> Any:
        if isinstance(event, SagaStarted):
            wanted: Any = Any
            if isinstance(definition, Saga):
                wanted = definition.input_type or Any
            elif isinstance(definition, Choreography):
                wanted = definition.start
            carried = {  # a fork's results from its origin, typed as the steps declare them
                step: _decode(raw, self._result_type(definition, step))
                for step, raw in event.carried.items()
            }
            return msgspec.structs.replace(
                event, input=_decode(event.input, wanted), carried=carried
            )
        if isinstance(event, StepSucceeded):
            wanted = self._result_type(definition, event.step)
            return msgspec.structs.replace(event, result=_decode(event.result, wanted))
        if isinstance(event, EventDispatched):
            known = self.event_types.get(event.event_type)
            if known is not None:
                return _decode(event.data, known)
            return msgspec.structs.replace(event, data=_decode(event.data, Any))
        return event

    def _result_type(self, definition: Saga | Choreography | None, step: str) -> Any:
        if isinstance(definition, Saga):
            return result_type(self.result_types, definition, step)
        return Any

    def _participant_event(
        self, name: str, record: Record, definition: Saga | Choreography | None
    ) -> Any:
        host = self.hosts.get(name)
        if host is None:  # a participant this runtime does not host
            return _decode(record.data, Any)
        event = host.decode(record)
        if not isinstance(event, Handled):
            return event
        if event.kind == REACTION:
            emitted = [
                msgspec.structs.replace(e, data=_decode(e.data, self.event_types.get(e.type, Any)))
                for e in _emitted.decode(event.result)
            ]
            return msgspec.structs.replace(event, result=emitted)
        wanted: Any = Any
        if event.kind == ACTION and isinstance(definition, Saga):
            wanted = result_type(self.result_types, definition, event.step)
        return msgspec.structs.replace(event, result=_decode(event.result, wanted))


def _saga_of(cause: str, known: dict[str, Any]) -> str:
    """The saga (among ``known``: the one read and its children seen so far) whose command
    caused a record: the longest id that ``cause`` starts with."""
    found = [saga_id for saga_id in known if cause.startswith(f"{saga_id}/")]
    return max(found, key=len) if found else next(iter(known))


def _decode(raw: msgspec.Raw | bytes, wanted: Any) -> Any:
    """Plain data for a payload: typed when possible, raw bytes if it is not msgpack at all."""
    try:
        return decode_result(raw, wanted)
    except msgspec.DecodeError:
        return bytes(raw)
