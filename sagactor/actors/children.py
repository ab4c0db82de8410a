"""The coordinator's part in child sagas (see :mod:`sagactor.sagas.children`).

A ``Child`` step's command goes to no participant: the coordinator that drives the parent
starts the child (id ``<parent>/<step>``) beside it and answers the parent's command with a
``Reply`` once the child has an outcome, exactly as a participant would. So the parent's
machine needs nothing new: retries, groups, cancels and recovery treat the step like any other.

Every answer goes out after the child's events are durable (from the commit's callback), and
is sent again whenever the parent asks again (a resend, a recovery): the child's journaled
state alone decides it. A child is found by its id before anything is started, in memory or in
the journal, so a resend never starts a second one. When the parent completes, its held
children are released; a held child found at recovery whose parent completed is released then.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from .. import clock
from ..actor_messages import Cancel, Reply
from ..errors import DefinitionError
from ..messages import SagaCompleted, SagaEvent, SagaStatus
from ..names import ACTION, COMPENSATION
from ..sagas.children import ChildSpec, answer, child_id, result_step
from ..sagas.definition import Saga
from ..sagas.effects import Send
from ..sagas.machine import SagaState, deadline_timer, decide, emit, start
from ..sagas.outcomes import decode_result, result_type
from ..sagas.versions import Definitions
from .child_input import child_input
from .flows import FlowSteps, awaited_of
from .nested import StartNested
from .saga_actor import SagaActor

__all__ = ["HELD", "ChildSteps", "Driver", "Release"]

HELD = "a held child saga ends with its parent: cancel the parent instead"


class Release(msgspec.Struct, frozen=True):
    """The parent of held child ``saga_id`` completed: the child completes too."""

    saga_id: str


class Driver(Protocol):
    """What :class:`ChildSteps` needs of the coordinator beyond a :class:`SagaActor`."""

    def resume(self, state: SagaState) -> None: ...

    def commit_child(
        self, state: SagaState, events: list[SagaEvent], timers: list[Any] | None = None
    ) -> None: ...


class _Coordinator(SagaActor, Driver):
    pass


class ChildSteps:
    """Runs the ``Child`` steps of the sagas one coordinator drives (on its turn)."""

    def __init__(self, coordinator: Any) -> None:
        self.coordinator: _Coordinator = coordinator
        self.flows = FlowSteps(coordinator)  # children that are choreographies
        self.coordinator = coordinator

    # -- the parent's commands -----------------------------------------------------------------

    def send(self, parent: SagaState, effect: Send) -> None:
        """Carry out the parent's action (start the child, or find it) or compensation
        (cancel the child, which undoes its steps; nothing if it never started)."""
        step = parent.definition.step(effect.step)
        spec: ChildSpec = step.child
        if self._definition(spec) is None:  # a choreography (a hybrid flow), or unknown
            self.flows.send(parent, step.name, effect.kind, effect.attempt)
            return
        saga_id = child_id(parent.saga_id, step.name)
        child = self._find(saga_id)
        if effect.kind == ACTION:
            if child is None:
                child = self._start(parent, step.name, spec, saga_id, effect.attempt)
        elif child is None:
            self._reply(Reply(parent.saga_id, step.name, COMPENSATION, effect.attempt, "ok"))
            return
        elif child.status is SagaStatus.RUNNING:
            reason = f"compensated by its parent {parent.saga_id!r}"
            events = decide(child, Cancel(saga_id, reason), clock.now())
            if events:
                self.coordinator.commit_child(child, events)
                return
            problem = f"the child saga passed its pivot {child.definition.pivot!r}: it completes"
            reply = Reply(parent.saga_id, step.name, COMPENSATION, effect.attempt, "error")
            self._reply(msgspec.structs.replace(reply, reason=problem))
            return
        if child is not None:
            self.report(child)

    def _start(
        self, parent: SagaState, step: str, spec: ChildSpec, saga_id: str, attempt: int
    ) -> SagaState | None:
        definition = self._definition(spec)
        given = child_input(self.coordinator, parent, step, attempt, definition, "child saga")
        if definition is None or given is None:
            return None  # the step failed: answered
        value, raw, digest = given
        state, events = start(definition, saga_id, parent.mode, value, raw, digest, clock.now())
        state.parent = parent.saga_id
        events[0] = msgspec.structs.replace(events[0], parent=parent.saga_id)  # a SagaStarted
        self.coordinator.sagas[saga_id] = state
        self.coordinator.commit_child(state, events, timers=deadline_timer(state))
        return None  # no answer before its start is durable

    # -- the child's side ------------------------------------------------------------------------

    def settled(self, state: SagaState, events: list[SagaEvent]) -> None:
        """``events`` of ``state`` are durable: answer its parent if it has an outcome now;
        release a completed parent's held children."""
        if state.parent:
            self.report(state)
        if state.status is SagaStatus.COMPLETED and events:
            for name in state.done:
                if state.definition.step(name).child is not None:
                    self._tell(Release(child_id(state.saga_id, name)))

    def report(self, child: SagaState) -> None:
        """Answer what the parent (driven here) awaits of ``child``, if it has an answer."""
        parent = self.coordinator.sagas.get(child.parent)
        if not isinstance(parent, SagaState) or parent.status.terminal:
            return
        step = child.saga_id.rsplit("/", 1)[1]
        awaited = awaited_of(parent, step)
        if awaited is None:
            return  # it awaits nothing of this child now
        kind, attempt = awaited
        spec: ChildSpec = parent.definition.step(step).child
        reply = answer(child, kind, attempt, result_step(spec, child.definition))
        if reply is not None:
            if reply.outcome == "ok" and kind == ACTION:  # typed as the parent reads it
                types = self.coordinator.outcomes.result_types
                wanted = result_type(types, parent.definition, step)
                reply = msgspec.structs.replace(reply, result=decode_result(reply.raw, wanted))
            self._reply(reply)

    def admits(self, message: StartNested) -> bool:
        """A reaction may start a saga whose definition is registered (else a recovery could
        not load it); the refusal goes to the reaction."""
        start = message.start
        definitions = self.coordinator.directory.definitions
        known = None
        if isinstance(definitions, Definitions):  # every version (a Directory's always is)
            known = definitions.exact(start.definition.name, start.definition.version)
        if known != start.definition:
            problem = "is not registered: define it (rt.define) before a reaction runs it"
            start.accepted.set_exception(DefinitionError(start.definition.name, problem))
            return False
        return True

    def release(self, message: Release) -> None:
        """The parent completed: a held child completes."""
        child = self._find(message.saga_id)
        if child is not None and child.held and child.status is SagaStatus.RUNNING:
            events: list[SagaEvent] = []
            emit(child, events, SagaCompleted())
            self.coordinator.commit_child(child, events)

    def resumed(self, state: SagaState) -> None:
        """A recovered held child whose parent completed meanwhile is released now."""
        if not (state.held and state.parent) or state.parent in self.coordinator.sagas:
            return
        parent = self.coordinator.load(state.parent)
        if isinstance(parent, SagaState) and parent.status is SagaStatus.COMPLETED:
            self._tell(Release(state.saga_id))

    # -- helpers ---------------------------------------------------------------------------------

    def _find(self, saga_id: str) -> SagaState | None:
        """The child, in memory or else from the journal (a running one is then driven here)."""
        sagas = self.coordinator.sagas
        child = sagas.get(saga_id)
        if child is None:
            child = self.coordinator.load(saga_id)
            if isinstance(child, SagaState) and not child.status.terminal:
                sagas[saga_id] = child
                self.coordinator.resume(child)
        return child if isinstance(child, SagaState) else None

    def _definition(self, spec: ChildSpec) -> Saga | None:
        if not isinstance(spec.saga, str):
            return spec.saga if isinstance(spec.saga, Saga) else None
        known = self.coordinator.directory.definitions.get(spec.saga)
        return known if isinstance(known, Saga) else None

    def _reply(self, reply: Reply) -> None:
        self._tell(reply)

    def _tell(self, message: Any) -> None:
        coordinator = self.coordinator
        coordinator.env.tell(coordinator.actor_ref, message)
