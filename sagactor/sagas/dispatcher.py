"""The native-choreography dispatcher: it routes events to their subscribers and decides nothing.

Per published outbox it journals the events it has not seen (event ids are deterministic, so a
republished outbox is recognised), notes the end when a terminal event arrives, and, once that
is durable, delivers each event to every participant subscribed to its type. Recovery
re-delivers a saga's journaled events: participants answer repeats from their inbox by
republishing their recorded outbox, which finishes any dispatch a crash interrupted.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future
from typing import Any

import msgspec
import pykka

from ..actors.environment import Environment
from ..messages import EventDispatched, SagaEvent
from .native import NativePublished, NativeState, native_react, native_start
from .outcomes import OutcomeBoard
from .saga_actor import Rebuild, Recover, SagaActor, SagaLoader, StartSaga

__all__ = ["Deliver", "NativeDispatcher"]


class Deliver(msgspec.Struct, frozen=True):
    """Dispatcher to subscriber: react to ``event`` (id ``event_id``) of saga ``saga_id``."""

    saga_id: str
    event_id: str
    event: Any
    reply_to: Any
    attempt: int = 1
    timeout: float = 0.0  # async handlers: none in native choreography


class NativeDispatcher(SagaActor):
    role = "dispatcher"

    def __init__(
        self,
        env: Environment,
        participants: dict[str, pykka.ActorRef[Any]],
        subscribers: dict[str, list[str]],
        types: dict[str, type[Any]],
        outcomes: OutcomeBoard,
        load: SagaLoader,
    ) -> None:
        super().__init__(env, outcomes, load)
        self.participants = participants
        self.subscribers = subscribers
        self.types = types

    def receive(self, message: Any) -> None:
        if isinstance(message, NativePublished):
            self._published(message)
        elif isinstance(message, StartSaga):
            self._start(message)
        elif isinstance(message, Recover):
            self.recover(message, self._redeliver)
        elif isinstance(message, Rebuild):
            self.rebuild(message.saga_id, self._redeliver)

    def _start(self, msg: StartSaga) -> None:
        if self.already_started(msg):
            return
        state, events = native_start(msg.definition, msg.saga_id, msg.input, msg.raw, msg.digest)
        self.sagas[msg.saga_id] = state
        first = events[-1]
        assert isinstance(first, EventDispatched)
        self._commit(state, events, [(first, msg.input)], accepted=msg.accepted)

    def _published(self, msg: NativePublished) -> None:
        state = self.sagas.get(msg.saga_id)
        if state is None:
            return
        live = {e.event_id: obj for e, obj in zip(msg.emitted, msg.events or [], strict=False)}
        events = native_react(state, msg)
        if events:
            deliveries = [
                (e, live.get(e.event_id)) for e in events if isinstance(e, EventDispatched)
            ]
            self._commit(state, events, deliveries)

    def _redeliver(self, state: NativeState) -> None:
        """Deliver every event again: subscribers answer repeats by republishing their outbox."""
        self._deliver(state.saga_id, [(d, None) for d in state.dispatched])

    def _commit(
        self,
        state: NativeState,
        events: list[SagaEvent],
        deliveries: list[tuple[EventDispatched, Any]],
        accepted: Future[str] | None = None,
    ) -> None:
        then = functools.partial(self._deliver, state.saga_id, deliveries)
        self.commit(state, events, state.saga_id, then, accepted)

    def _deliver(self, saga_id: str, deliveries: list[tuple[EventDispatched, Any]]) -> None:
        for dispatched, live in deliveries:
            event = live
            if event is None:
                kind = self.types.get(dispatched.event_type)
                if kind is None:
                    continue  # a type no participant subscribes to
                event = msgspec.msgpack.decode(dispatched.data, type=kind)
            for name in self.subscribers.get(dispatched.event_type, ()):
                ref = self.participants.get(name)
                if ref is not None:
                    self.env.tell(ref, Deliver(saga_id, dispatched.event_id, event, self._reply_to))
