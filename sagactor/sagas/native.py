"""Native choreography: a workflow that emerges from participants' ``@on`` subscriptions.

A :class:`Choreography` names only its start event and its terminal events; who does what is
in the participants (``@on(OrderCreated, emits=(InventoryReserved, InventoryFailed))``). From
those declarations this module derives the event graph, checks it (an event nobody handles, a
participant whose work has no compensation path, a cycle), and keeps the pure state of one
running instance: which events were dispatched (deduplicated by event id) and whether a
terminal one was seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..actors.participant import Participant
from ..errors import DefinitionError
from ..messages import (
    EventDispatched,
    Outcome,
    SagaCompensated,
    SagaCompleted,
    SagaEvent,
    SagaStarted,
    SagaStatus,
    SagaStuck,
)

__all__ = [
    "Choreography",
    "Emitted",
    "NativePublished",
    "NativeState",
    "check",
    "event_graph",
    "event_id",
    "event_types",
    "subscribers",
]


@dataclass(frozen=True, slots=True)
class Choreography:
    """A workflow defined by its events: it begins with ``start`` and ends with one of
    ``completed`` (success) or ``failed`` (everything undone)."""

    name: str
    start: type[Any]
    completed: tuple[type[Any], ...]
    failed: tuple[type[Any], ...] = ()
    version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "completed", tuple(self.completed))
        object.__setattr__(self, "failed", tuple(self.failed))
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError(str(self.name), "a choreography needs a non-empty name")
        if not self.completed:
            raise DefinitionError(self.name, "a choreography needs at least one completed event")
        for kind in (self.start, *self.completed, *self.failed):
            if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
                raise DefinitionError(self.name, f"{kind!r} is not a msgspec Struct event type")
        if self.start in self.completed or self.start in self.failed:
            raise DefinitionError(self.name, "the start event cannot also be a terminal event")

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def terminal(self, type_name: str) -> SagaStatus | None:
        if type_name in {t.__name__ for t in self.completed}:
            return SagaStatus.COMPLETED
        if type_name in {t.__name__ for t in self.failed}:
            return SagaStatus.COMPENSATED
        return None


class Emitted(msgspec.Struct, frozen=True, array_like=True):
    """One published event, as recorded in the publisher's outbox (its inbox record)."""

    event_id: str
    type: str
    data: msgspec.Raw


class NativePublished(msgspec.Struct, frozen=True):
    """A participant's committed outbox, sent to the dispatcher. ``events`` are the live
    objects when known (``None`` after a restart: the dispatcher then decodes ``emitted``)."""

    saga_id: str
    source: str
    emitted: list[Emitted]
    events: list[Any] | None = None
    error: str = ""


def event_id(saga_id: str, source: str, cause: str, index: int) -> str:
    """Deterministic, so a republished outbox carries the same ids and is deduplicated."""
    digest = hashlib.blake2b(f"{saga_id}|{source}|{cause}|{index}".encode(), digest_size=8)
    return digest.hexdigest()


# -- the graph ---------------------------------------------------------------------------------


def subscribers(participants: Iterable[Participant[Any]]) -> dict[type[Any], list[str]]:
    table: dict[type[Any], list[str]] = {}
    for participant in participants:
        for kind in type(participant)._reactions:
            table.setdefault(kind, []).append(participant.participant_name)
    return table


def event_graph(participants: Iterable[Participant[Any]]) -> dict[type[Any], set[type[Any]]]:
    """``event -> events that a reaction to it may publish``, from the ``emits`` declarations."""
    graph: dict[type[Any], set[type[Any]]] = {}
    for participant in participants:
        for kind, spec in type(participant)._reactions.items():
            graph.setdefault(kind, set()).update(spec.emits)
    return graph


def event_types(
    choreography: Choreography, participants: Iterable[Participant[Any]]
) -> dict[str, type[Any]]:
    """Every event type of the workflow by name (to decode journaled events)."""
    known = [choreography.start, *choreography.completed, *choreography.failed]
    for source, targets in event_graph(participants).items():
        known += [source, *targets]
    return {kind.__name__: kind for kind in known}


def _reachable(
    graph: Mapping[type[Any], set[type[Any]]], roots: Iterable[type[Any]]
) -> set[type[Any]]:
    seen: set[type[Any]] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def check(choreography: Choreography, participants: Iterable[Participant[Any]]) -> list[str]:
    """What is wrong with the workflow the participants' subscriptions make; empty if nothing.

    Reports an event no participant handles (and that is not terminal), a participant whose
    work can be followed by a failure it does not react to (no compensation path), and cycles.
    """
    participants = list(participants)
    graph = event_graph(participants)
    handled = subscribers(participants)
    terminal = set(choreography.completed) | set(choreography.failed)
    problems = []
    if choreography.start not in handled:
        problems.append(f"no participant reacts to the start event {choreography.start.__name__}")
    reachable = _reachable(graph, [choreography.start])
    for kind in sorted(reachable - terminal - set(handled), key=lambda t: t.__name__):
        publishers = sorted(
            p.participant_name
            for p in participants
            if any(kind in spec.emits for spec in type(p)._reactions.values())
        )
        problems.append(
            f"event {kind.__name__} (published by {', '.join(publishers)}) "
            "is handled by no participant"
        )
    succeeds = {k for k in reachable if _reachable(graph, [k]) & set(choreography.completed)}
    # A failure is an event after which the workflow can no longer complete.
    failures = {k for k in reachable - set(choreography.completed) if k not in succeeds}
    for participant in participants:
        reacts_to = set(type(participant)._reactions)
        for kind, spec in type(participant)._reactions.items():
            if kind in failures or kind not in reachable:
                continue
            after_work = _reachable(graph, [e for e in spec.emits if e not in failures]) & failures
            if after_work and not reacts_to & after_work:
                names = ", ".join(sorted(f.__name__ for f in after_work))
                problems.append(
                    f"participant {participant.participant_name!r} reacts to {kind.__name__} "
                    f"but to none of the failures that can follow its work ({names}): "
                    "no compensation path"
                )
    problems += _cycles(graph, choreography.start)
    return problems


def _cycles(graph: Mapping[type[Any], set[type[Any]]], start: type[Any]) -> list[str]:
    found: list[str] = []
    path: list[type[Any]] = []
    done: set[type[Any]] = set()

    def visit(node: type[Any]) -> None:
        if node in path:
            loop = [*path[path.index(node) :], node]
            found.append("cycle: " + " -> ".join(k.__name__ for k in loop))
            return
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ()), key=lambda t: t.__name__):
            visit(nxt)
        path.pop()
        done.add(node)

    visit(start)
    return found


# -- one running instance ----------------------------------------------------------------------


@dataclass(slots=True)
class NativeState:
    saga_id: str
    definition: Choreography
    input: Any
    input_raw: bytes
    digest: str
    mode: str = "native"
    status: SagaStatus = SagaStatus.RUNNING
    reason: str = ""
    seq: int = 0
    seen: set[str] = field(default_factory=set)
    dispatched: list[EventDispatched] = field(default_factory=list)
    last_event: str = ""

    def evolve(self, event: SagaEvent) -> None:
        if isinstance(event, EventDispatched):
            self.seen.add(event.event_id)
            self.dispatched.append(event)
            self.last_event = event.event_type
        elif isinstance(event, SagaCompleted):
            self.status = SagaStatus.COMPLETED
        elif isinstance(event, SagaCompensated):
            self.status, self.reason = SagaStatus.COMPENSATED, event.reason
        elif isinstance(event, SagaStuck):
            self.status, self.reason = SagaStatus.STUCK, event.reason
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
    state = NativeState(saga_id, definition, value, raw, digest)
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
            news.append(SagaCompensated(reason=_failure_reason(state, emitted.type)))
        for event in news:
            state.evolve(event)
        events += news
    return events
