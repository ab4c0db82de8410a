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
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaEvent,
    SagaResumed,
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
    ``completed`` (success) or ``failed`` (everything undone).

    ``cancel`` (optional) is the event that ``Runtime.cancel`` publishes into a running
    instance; its subscribers undo their work, and the flow they start ends with a ``failed``
    event. It is built from the start event's fields of the same names, plus ``reason`` (the
    cancel's reason) when it has that field. Without it, ``Runtime.cancel`` is refused.
    """

    name: str
    start: type[Any]
    completed: tuple[type[Any], ...]
    failed: tuple[type[Any], ...] = ()
    version: int = 1
    cancel: type[Any] | None = None

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
        if self.cancel is not None:
            self._check_cancel(self.cancel)

    def _check_cancel(self, cancel: type[Any]) -> None:
        if not (isinstance(cancel, type) and issubclass(cancel, msgspec.Struct)):
            raise DefinitionError(
                self.name, f"cancel={cancel!r} is not a msgspec Struct event type"
            )
        if cancel is self.start or cancel in self.completed or cancel in self.failed:
            raise DefinitionError(
                self.name,
                f"cancel={cancel.__name__} must be neither the start nor a terminal event: "
                "its subscribers undo their work, and their events end with a failed one",
            )
        known = {*self.start.__struct_fields__, "reason"}
        required = cancel.__struct_fields__[
            : len(cancel.__struct_fields__) - len(cancel.__struct_defaults__)
        ]
        missing = [f for f in required if f not in known]
        if missing:
            raise DefinitionError(
                self.name,
                f"cancel={cancel.__name__} needs {', '.join(missing)}, which the start event "
                f"{self.start.__name__} does not have (its fields and 'reason' are copied)",
            )

    def cancel_event(self, start: Any, reason: str) -> Any:
        """The cancel event of the instance that began with ``start``."""
        assert self.cancel is not None
        fields = self.cancel.__struct_fields__
        values = {f: getattr(start, f) for f in fields if f in self.start.__struct_fields__}
        if "reason" in fields:
            values["reason"] = reason
        return self.cancel(**values)

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
    cause: str = ""  # the id of the delivered event this outbox answers


CANCEL_SOURCE = "cancel"  # the publisher of a cancel event, in the journal and the history


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
    known += [choreography.cancel] if choreography.cancel is not None else []
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


def _failures(
    graph: Mapping[type[Any], set[type[Any]]], choreography: Choreography
) -> tuple[set[type[Any]], set[type[Any]]]:
    """The events the workflow can reach, and its failures: events after which it can no
    longer complete (the cancel event and what follows it among them)."""
    roots = [choreography.start, *([choreography.cancel] if choreography.cancel else [])]
    reachable = _reachable(graph, roots)
    succeeds = {k for k in reachable if _reachable(graph, [k]) & set(choreography.completed)}
    return reachable, {k for k in reachable - set(choreography.completed) if k not in succeeds}


def check(choreography: Choreography, participants: Iterable[Participant[Any]]) -> list[str]:
    """What is wrong with the workflow the participants' subscriptions make; empty if nothing.

    Reports an event no participant handles (and that is not terminal), a participant whose
    work can be followed by a failure it does not react to (no compensation path), cycles, and
    a cancel event that would not undo every participant's work.
    """
    participants = list(participants)
    graph = event_graph(participants)
    handled = subscribers(participants)
    terminal = set(choreography.completed) | set(choreography.failed)
    problems = []
    if choreography.start not in handled:
        problems.append(f"no participant reacts to the start event {choreography.start.__name__}")
    reachable, failures = _failures(graph, choreography)
    for kind in sorted(reachable - terminal - set(handled), key=lambda t: t.__name__):
        publishers = sorted(
            p.participant_name
            for p in participants
            if any(kind in spec.emits for spec in type(p)._reactions.values())
        )
        problems.append(
            f"event {kind.__name__} (published by {', '.join(publishers) or 'cancel'}) "
            "is handled by no participant"
        )
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
    if choreography.cancel is not None:
        problems += _cancel_problems(choreography, choreography.cancel, participants, graph)
    problems += _cycles(graph, choreography.start)
    if choreography.cancel is not None:
        problems += [p for p in _cycles(graph, choreography.cancel) if p not in problems]
    return problems


def _cancel_problems(
    choreography: Choreography,
    cancel: type[Any],
    participants: list[Participant[Any]],
    graph: Mapping[type[Any], set[type[Any]]],
) -> list[str]:
    """A cancel must end the workflow as failed and reach every participant with work to undo."""
    undo = _reachable(graph, [cancel])
    name = cancel.__name__
    problems = []
    if undo & set(choreography.completed):
        problems.append(f"the cancel event {name} can lead to a completed event")
    elif not undo & set(choreography.failed):
        problems.append(f"the cancel event {name} leads to none of the failed events")
    _, failures = _failures(graph, choreography)
    for participant in participants:
        reactions = type(participant)._reactions
        if set(reactions) & undo:
            continue
        for kind, spec in reactions.items():
            after_work = _reachable(graph, [e for e in spec.emits if e not in failures]) & failures
            if kind not in failures and after_work:
                problems.append(
                    f"participant {participant.participant_name!r} reacts to {kind.__name__} "
                    f"but to nothing that follows the cancel event {name}: a cancel would "
                    "leave its work undone"
                )
                break
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
        elif isinstance(event, SagaResumed):
            self.status, self.reason = SagaStatus.RUNNING, ""
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
            why = state.cancel_reason or _failure_reason(state, emitted.type)
            news.append(SagaCompensated(reason=why))
        for event in news:
            state.evolve(event)
        events += news
    return events
