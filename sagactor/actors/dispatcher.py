"""The native-choreography dispatcher: it routes events to their subscribers and decides nothing.

Per published outbox it journals the events it has not seen (event ids are deterministic, so a
republished outbox is recognised), notes the end when a terminal event arrives, and, once that
is durable, delivers each event to every participant subscribed to its type. Recovery
re-delivers a saga's journaled events: participants answer repeats from their inbox by
republishing their recorded outbox, which finishes any dispatch a crash interrupted.

Cancel (``Runtime.cancel``) waits until every delivery in flight is answered (their outboxes are
held meanwhile), so that it knows whether the flow passed its point of no return (then it
completes; the cancel is dropped with a warning) or already undoes itself. Otherwise it
journals the choreography's cancel event and delivers it; from then on only the events that
follow from the cancel (its *chain*: outboxes answering a chain event) are delivered, so the
forward flow stops where it was and the subscribers undo their work. Events of the held or
later outboxes are journaled, never delivered. Resume of a stuck saga re-delivers its events
as recovery does: the reaction that failed runs again.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from concurrent.futures import Future
from typing import Any

import msgspec
import pykka

from ..actor_messages import (
    CancelNative,
    Deliver,
    NativePublished,
    Rebuild,
    Recover,
    Resume,
    StartSaga,
)
from ..messages import EventDispatched, SagaEvent, SagaResumed, SagaStatus
from ..sagas.native import NativeState, native_react, native_start
from ..sagas.native_cancel import cancel_refusal, native_cancel
from .environment import Environment
from .kinds import ActorKind
from .outcomes import OutcomeBoard
from .saga_actor import SagaActor, SagaLoader

__all__ = ["NativeDispatcher"]

logger = logging.getLogger("sagactor")


class NativeDispatcher(SagaActor):
    role = "dispatcher"

    def __init__(
        self, kind: ActorKind, env: Environment, outcomes: OutcomeBoard, load: SagaLoader
    ) -> None:
        super().__init__(kind, env, outcomes, load)
        self.outstanding: Counter[str] = Counter()  # deliveries not answered yet, per saga
        self.cancelling: dict[str, tuple[CancelNative, list[NativePublished]]] = {}
        self.chains: dict[str, set[str]] = {}  # cancelled sagas: events delivered since

    def receive(self, message: Any) -> None:
        if isinstance(message, NativePublished):
            self._answered(message)
        elif isinstance(message, StartSaga):
            self._start(message)
        elif isinstance(message, CancelNative):
            self._cancel(message)
        elif isinstance(message, Resume):
            self._resume(message.saga_id)
        elif isinstance(message, Recover):
            self.recover(message, self._redeliver)
        elif isinstance(message, Rebuild):
            # The failed commit's deliveries were never sent: do not wait for their answers.
            self.outstanding.pop(message.saga_id, None)
            self.rebuild(message.saga_id, self._redeliver)

    def _start(self, msg: StartSaga) -> None:
        if self.already_started(msg):
            return
        # New here: a count left by an earlier start of this id that failed is of deliveries
        # planned but never sent (their answers will not come).
        self.outstanding.pop(msg.saga_id, None)
        state, events = native_start(msg.definition, msg.saga_id, msg.input, msg.raw, msg.digest)
        self.sagas[msg.saga_id] = state
        first = events[-1]
        assert isinstance(first, EventDispatched)
        self._commit(state, events, [(first, msg.input)], accepted=msg.accepted)

    def _answered(self, msg: NativePublished) -> None:
        if self.outstanding[msg.saga_id] > 1:
            self.outstanding[msg.saga_id] -= 1
        else:
            self.outstanding.pop(msg.saga_id, None)
        hold = self.cancelling.get(msg.saga_id)
        if hold is None:
            self._published(msg)
            return
        hold[1].append(msg)
        if not self.outstanding[msg.saga_id]:
            self._decide(msg.saga_id)

    def _published(self, msg: NativePublished) -> None:
        state = self.sagas.get(msg.saga_id)
        if state is None:
            return
        live = {e.event_id: obj for e, obj in zip(msg.emitted, msg.events or [], strict=False)}
        events = native_react(state, msg)
        deliveries = [(e, live.get(e.event_id)) for e in events if isinstance(e, EventDispatched)]
        if state.cancel_at >= 0:
            deliveries = self._undoing(state, msg, live)
            if state.status.terminal:
                self.chains.pop(state.saga_id, None)
        if events:
            self._commit(state, events, deliveries)
        elif deliveries:
            self._send(self._plan(state.saga_id, deliveries))

    def _undoing(
        self, state: NativeState, msg: NativePublished, live: dict[str, Any]
    ) -> list[tuple[EventDispatched, Any]]:
        """A cancelled saga delivers only the outboxes that answer its chain, each event once
        (a journaled one too: after a restart the chain is rebuilt as they are republished)."""
        chain = self.chains.setdefault(msg.saga_id, set())
        if msg.cause not in chain:
            return []
        journaled = {d.event_id: d for d in state.dispatched}
        deliveries = []
        for emitted in msg.emitted:
            dispatched = journaled.get(emitted.event_id)
            if dispatched is not None and emitted.event_id not in chain:
                chain.add(emitted.event_id)
                deliveries.append((dispatched, live.get(emitted.event_id)))
        return deliveries

    def _redeliver(self, state: NativeState) -> None:
        """Deliver the events again: subscribers answer repeats by republishing their outbox.

        A cancelled saga: the events up to its cancel event; its chain follows by itself."""
        self._send(self._replan(state))

    def _replan(self, state: NativeState) -> list[tuple[pykka.ActorRef[Any], Deliver]]:
        todo = state.dispatched
        if state.cancel_at >= 0:
            todo = todo[: state.cancel_at + 1]
            self.chains[state.saga_id] = {todo[-1].event_id}
        return self._plan(state.saga_id, [(d, None) for d in todo])

    # -- cancel and resume ---------------------------------------------------------------------

    def _cancel(self, msg: CancelNative) -> None:
        state = self._driven(msg.saga_id)
        if state is None or state.status.terminal or state.cancel_at >= 0:
            return  # ended or cancelled already: the outcome stands
        if msg.saga_id not in self.cancelling:
            self.cancelling[msg.saga_id] = (msg, [])
            if not self.outstanding[msg.saga_id]:
                self._decide(msg.saga_id)

    def _decide(self, saga_id: str) -> None:
        """Every delivery in flight is answered: apply the cancel, or say why not."""
        request, held = self.cancelling.pop(saga_id)
        state = self.sagas.get(saga_id)
        if state is not None:
            problem = cancel_refusal(state, held, request.too_late, request.moot)
            if problem:
                logger.warning("saga %s: the cancel is not applied: %s", saga_id, problem)
            else:
                event = state.definition.cancel_event(state.input, request.reason)
                events = native_cancel(state, event, request.reason)
                dispatched = events[-1]
                assert isinstance(dispatched, EventDispatched)
                self.chains[saga_id] = {dispatched.event_id}
                self._commit(state, events, [(dispatched, event)])
        for published in held:
            self._published(published)

    def _resume(self, saga_id: str) -> None:
        state = self._driven(saga_id)
        if state is None or state.status is not SagaStatus.STUCK:
            return
        resumed = SagaResumed()
        state.evolve(resumed)
        self.sagas[saga_id] = state
        then = functools.partial(self._send, self._replan(state))
        self.commit(state, [resumed], saga_id, then)

    def _driven(self, saga_id: str) -> NativeState | None:
        """The saga as this dispatcher drives it, or as the journal has it."""
        state: NativeState | None = self.sagas.get(saga_id)
        if state is None:
            state = self.load(saga_id)
            if state is not None and not state.status.terminal:
                self.sagas[saga_id] = state
        return state

    # -- delivery ------------------------------------------------------------------------------

    def _commit(
        self,
        state: NativeState,
        events: list[SagaEvent],
        deliveries: list[tuple[EventDispatched, Any]],
        accepted: Future[str] | None = None,
    ) -> None:
        then = functools.partial(self._send, self._plan(state.saga_id, deliveries))
        self.commit(state, events, state.saga_id, then, accepted)

    def _plan(
        self, saga_id: str, deliveries: list[tuple[EventDispatched, Any]]
    ) -> list[tuple[pykka.ActorRef[Any], Deliver]]:
        """The messages that deliver ``deliveries``, counted as in flight. Planned on the
        dispatcher's turn, sent once committed (on a later turn)."""
        plan = []
        for dispatched, live in deliveries:
            event = live
            if event is None:
                kind = self.directory.event_types.get(dispatched.event_type)
                if kind is None:
                    continue  # a type no participant subscribes to
                event = msgspec.msgpack.decode(dispatched.data, type=kind)
            for name in self.directory.subscribers.get(dispatched.event_type, ()):
                ref = self.participants.get(name)
                if ref is not None:
                    plan.append((ref, Deliver(saga_id, dispatched.event_id, event, self._reply_to)))
        self.outstanding[saga_id] += len(plan)
        return plan

    def _send(self, plan: list[tuple[pykka.ActorRef[Any], Deliver]]) -> None:
        for ref, message in plan:
            self.env.tell(ref, message)
