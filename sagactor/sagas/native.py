"""Native choreography: the pure state of one running instance of a :class:`Choreography`.

A :class:`~sagactor.sagas.definition.Choreography` names only its start event and its terminal
events; who does what is in the participants' ``@on`` reactions, whose graph
:mod:`~sagactor.sagas.workflow` derives and checks. Here: which events an instance dispatched
(deduplicated by event id), whether a terminal one was seen, and the journal events a
participant's outbox causes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..actor_messages import NativePublished
from ..messages import (
    EventDispatched,
    Outcome,
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaEvent,
    SagaStarted,
    SagaStatus,
    SagaStuck,
)
from .definition import Choreography
from .endings import fold_end
from .inputs import digest_key

__all__ = [
    "CANCEL_SOURCE",
    "NativeState",
    "event_id",
    "native_react",
    "native_start",
]


CANCEL_SOURCE = "cancel"  # the publisher of a cancel event, in the journal and the history


def event_id(saga_id: str, source: str, cause: str, index: int) -> str:
    """Deterministic, so a republished outbox carries the same ids and is deduplicated."""
    digest = hashlib.blake2b(f"{saga_id}|{source}|{cause}|{index}".encode(), digest_size=8)
    return digest.hexdigest()


# -- one running instance ----------------------------------------------------------------------


@dataclass(slots=True)
class NativeState:
    saga_id: str
    definition: Choreography
    input: Any  # its encoding is in SagaStarted only
    digest: int | str  # its input's digest, as digest_key keeps it
    mode: str = "native"
    status: SagaStatus = SagaStatus.RUNNING
    reason: str = ""
    failure: str = ""  # the reason before it got stuck (see ``fold_end``)
    seq: int = 0
    seen: set[str] = field(default_factory=set)
    dispatched: list[EventDispatched] = field(default_factory=list)
    last_event: str = ""
    cancel_at: int = -1  # where the cancel event is in ``dispatched`` (-1: not cancelled)
    cancel_reason: str = ""

    def evolve(self, event: SagaEvent) -> None:
        if isinstance(event, EventDispatched):
            self.seen.add(event.event_id)
            self.dispatched.append(event)
            self.last_event = event.event_type
            if event.source == CANCEL_SOURCE:
                self.cancel_at = len(self.dispatched) - 1
        elif isinstance(event, SagaCancelled):
            self.cancel_reason = event.reason
        else:
            fold_end(self, event)
        self.seq += 1

    def outcome(self) -> Outcome:
        return Outcome(
            saga_id=self.saga_id,
            saga=self.definition.name,
            status=self.status,
            reason=self.reason,
            results={"events": [d.event_type for d in self.dispatched]},
        )


def native_start(
    definition: Choreography, saga_id: str, value: Any, raw: bytes, digest: str
) -> tuple[NativeState, list[SagaEvent]]:
    state = NativeState(saga_id, definition, value, digest_key(digest))
    events: list[SagaEvent] = [
        SagaStarted(
            saga=definition.name,
            version=definition.version,
            mode="native",
            input=msgspec.Raw(raw),
            digest=digest,
        ),
        EventDispatched(
            event_id=event_id(saga_id, "start", "", 0),
            event_type=type(value).__name__,
            data=msgspec.Raw(raw),
            source="start",
        ),
    ]
    for event in events:
        state.evolve(event)
    return state, events


def _failure_reason(state: NativeState, terminal: str) -> str:
    """Why a choreography failed: the latest event that carries a ``reason`` field, if any."""
    for dispatched in reversed(state.dispatched):
        payload = msgspec.msgpack.decode(dispatched.data)
        if isinstance(payload, dict) and payload.get("reason"):
            return f"{dispatched.event_type}: {payload['reason']} (ended with {terminal})"
    return f"ended with {terminal}"


def native_react(state: NativeState, published: NativePublished) -> list[SagaEvent]:
    """The journal events a participant's outbox causes: its new events, each followed by the
    end if it is terminal. Events already seen (a republished outbox) cause nothing."""
    events: list[SagaEvent] = []
    if published.error and not state.status.terminal:
        stuck = SagaStuck(reason=f"participant {published.source!r}: {published.error}")
        state.evolve(stuck)
        return [stuck]
    for emitted in published.emitted:
        if state.status.terminal:
            break
        if emitted.event_id in state.seen:
            continue
        news: list[SagaEvent] = [
            EventDispatched(
                event_id=emitted.event_id,
                event_type=emitted.type,
                data=emitted.data,
                source=published.source,
            )
        ]
        end = state.definition.terminal(emitted.type)
        if end is SagaStatus.COMPLETED:
            news.append(SagaCompleted())
        elif end is SagaStatus.COMPENSATED:
            why = state.cancel_reason or _failure_reason(state, emitted.type)
            news.append(SagaCompensated(reason=why))
        for event in news:
            state.evolve(event)
        events += news
    return events
