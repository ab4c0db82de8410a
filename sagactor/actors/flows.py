"""Hybrid flows, the coordinator's side: a ``Child`` step whose child is a native
:class:`~sagactor.sagas.definition.Choreography` (choreography between bounded contexts,
orchestration within).

The step publishes the choreography's start event (through the native dispatcher, under the
id ``<parent>/<step>``) and waits for its terminal event. Nothing is held in memory that a
restart would lose: the parent's resend (live or after a recovery) looks the choreography up
in the journal first, so it is started once, and its end is learnt from the outcome board,
or from the journal when it ended before anyone waited. A completed choreography's terminal
event is the step's result; a failed one (it undid its own work) fails the step. Such a step
is the parent's pivot, so it is compensated only while in doubt (the parent was cancelled
while the choreography ran): the compensation waits for the choreography's end, and is done
if it failed; one that completed cannot be undone from outside, and says so.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import msgspec

from ..actor_messages import Reply, StartSaga
from ..messages import EventDispatched, SagaStatus
from ..names import ACTION, COMPENSATION, NATIVE, saga_stream
from ..persistence.recovery import decode_saga_events
from ..sagas.children import ChildSpec, child_id
from ..sagas.definition import Choreography
from ..sagas.fold import summarize
from ..sagas.machine import SagaState
from ..sagas.outcomes import decode_result, result_type
from .child_input import child_input
from .outcomes import Completion
from .saga_actor import SagaActor

__all__ = ["FlowEnded", "FlowSteps", "awaited_of"]


class FlowEnded(msgspec.Struct, frozen=True):
    """The choreography ``saga_id`` that a step waits for ended (or its start failed:
    ``problem``)."""

    saga_id: str
    problem: str = ""


class FlowSteps:
    """Runs the ``Child`` steps whose child is a choreography, for one coordinator."""

    def __init__(self, coordinator: SagaActor) -> None:
        self.coordinator = coordinator
        self.watching: dict[str, Completion] = {}

    def send(self, parent: SagaState, step: str, kind: str, attempt: int) -> None:
        """The parent's command for ``step``: start or find the choreography, answer when
        it has ended."""
        spec: ChildSpec = parent.definition.step(step).child
        saga_id = child_id(parent.saga_id, step)
        self._watch(saga_id)  # first: an end after this point reaches us, one before is journaled
        ended = self._ended(saga_id)
        if ended is not None:
            self._unwatch(saga_id)
            self._answer(parent, step, kind, attempt, ended)
            return
        if self._exists(saga_id):
            return  # running: its end is watched
        if kind == COMPENSATION:  # it never started: nothing to undo
            self._unwatch(saga_id)
            self._reply(Reply(parent.saga_id, step, kind, attempt, "ok"))
            return
        definition = self._definition(spec)
        given = child_input(self.coordinator, parent, step, attempt, definition, "choreography")
        if definition is None or given is None:
            return  # the step failed: answered
        value, raw, digest = given
        accepted: Future[str] = Future()
        accepted.add_done_callback(lambda done: self._accepted(saga_id, done))
        env = self.coordinator.env
        env.tell(
            env.native,
            StartSaga(
                definition=definition,
                saga_id=saga_id,
                mode=NATIVE,
                input=value,
                raw=raw,
                digest=digest,
                fresh=False,
                accepted=accepted,
            ),
        )

    def ended(self, message: FlowEnded) -> None:
        """The choreography ended (or could not start): answer what its parent awaits."""
        self._unwatch(message.saga_id)
        parent_id, step = message.saga_id.rsplit("/", 1)
        parent = self.coordinator.sagas.get(parent_id)
        if not isinstance(parent, SagaState) or parent.status.terminal:
            return
        awaited = awaited_of(parent, step)
        if awaited is None:
            return
        kind, attempt = awaited
        if message.problem:
            reply = Reply(parent_id, step, kind, attempt, "failed", reason=message.problem)
            self._reply(reply)
            return
        ended = self._ended(message.saga_id)
        if ended is not None:
            self._answer(parent, step, kind, attempt, ended)

    # -- helpers ---------------------------------------------------------------------------------

    def _answer(self, parent: SagaState, step: str, kind: str, attempt: int, ended: Any) -> None:
        status, reason, last = ended
        saga_id = parent.saga_id
        if kind == COMPENSATION:
            if status is SagaStatus.COMPLETED:
                problem = "the choreography completed: it cannot be undone from outside"
                self._reply(Reply(saga_id, step, kind, attempt, "error", reason=problem))
            else:
                self._reply(Reply(saga_id, step, kind, attempt, "ok"))
        elif status is SagaStatus.COMPLETED:
            types = self.coordinator.outcomes.result_types
            wanted = result_type(types, parent.definition, step)
            value = decode_result(last, wanted)
            self._reply(Reply(saga_id, step, kind, attempt, "ok", value, last))
        else:
            self._reply(Reply(saga_id, step, kind, attempt, "failed", reason=reason))

    def _ended(self, saga_id: str) -> tuple[SagaStatus, str, msgspec.Raw] | None:
        """The choreography's end from the journal: status, reason, its last event's data."""
        journal = self.coordinator.env.journal
        records = journal.read(saga_stream(saga_id))
        if not records or not records[-1].final:
            return None
        events = decode_saga_events(journal, records)
        summary = summarize(saga_id, events)
        dispatched = [e for e in events if isinstance(e, EventDispatched)]
        last = dispatched[-1].data if dispatched else msgspec.Raw(msgspec.msgpack.encode(None))
        reason = summary.reason
        said = decode_result(last, Any)  # a failed event's own reason says most
        told = said.get("reason") if isinstance(said, dict) else None
        if isinstance(told, str) and told not in reason:
            reason = f"{reason}: {told}" if reason else told
        return summary.status, reason, last

    def _exists(self, saga_id: str) -> bool:
        return bool(self.coordinator.env.journal.read(saga_stream(saga_id), limit=1))

    def _watch(self, saga_id: str) -> None:
        if saga_id in self.watching:
            return
        completion = self.coordinator.outcomes.wait(saga_id)
        self.watching[saga_id] = completion
        env, me = self.coordinator.env, self.coordinator.actor_ref
        completion.add_done_callback(lambda _: env.tell(me, FlowEnded(saga_id)))

    def _unwatch(self, saga_id: str) -> None:
        completion = self.watching.pop(saga_id, None)
        if completion is not None:
            self.coordinator.outcomes.release(saga_id, completion)

    def _accepted(self, saga_id: str, accepted: Future[str]) -> None:
        error = accepted.exception()
        if error is not None:  # nothing was journaled: the step fails (a conflict, a bad event)
            problem = f"the choreography did not start: {type(error).__name__}: {error}"
            env = self.coordinator.env
            env.tell(self.coordinator.actor_ref, FlowEnded(saga_id, problem))

    def _definition(self, spec: ChildSpec) -> Choreography | None:
        if isinstance(spec.saga, Choreography):
            return spec.saga
        known = self.coordinator.directory.definitions.get(spec.saga_name)
        return known if isinstance(known, Choreography) else None

    def _reply(self, reply: Reply) -> None:
        env = self.coordinator.env
        env.tell(self.coordinator.actor_ref, reply)


def awaited_of(parent: SagaState, step: str) -> tuple[str, int] | None:
    """What the parent awaits of ``step`` now: its action or compensation, at which attempt."""
    member = parent.running.get(step)
    if member is not None and member.in_flight:
        return ACTION, member.attempt
    if parent.kind == COMPENSATION and parent.step == step and parent.undoing:
        return COMPENSATION, parent.attempt
    return None
