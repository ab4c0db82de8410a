"""The native-choreography dispatcher: it routes events to their subscribers and decides nothing.

Per published outbox it journals the events it has not seen (event ids are deterministic, so a
republished outbox is recognised), notes the end when a terminal event arrives, and, once that
is durable, delivers each event to every participant subscribed to its type. Recovery
re-delivers a saga's journaled events: participants answer repeats from their inbox by
republishing their recorded outbox, which finishes any dispatch a crash interrupted.
"""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import Future
from typing import Any

import msgspec
import pykka

from ..actors.environment import Environment
from ..crashpoints import CrashPoint, SimulatedCrash
from ..errors import SagaIdConflict
from ..messages import FINAL_EVENTS, EventDispatched, Outcome, SagaEvent
from ..persistence.journal import Record
from ..persistence.recovery import saga_stream
from .coordinator import Rebuild, Recover, SagaLoader, StartSaga
from .native import NativePublished, NativeState, native_react, native_start
from .outcomes import OutcomeBoard

__all__ = ["Deliver", "NativeDispatcher"]

logger = logging.getLogger("sagactor.dispatcher")
_encode = msgspec.msgpack.encode


class Deliver(msgspec.Struct, frozen=True):
    """Dispatcher to subscriber: react to ``event`` (id ``event_id``) of saga ``saga_id``."""

    saga_id: str
    event_id: str
    event: Any
    reply_to: Any
    attempt: int = 1
    timeout: float = 0.0  # async handlers: none in native choreography


class NativeDispatcher(pykka.ThreadingActor):
    def __init__(
        self,
        env: Environment,
        participants: dict[str, pykka.ActorRef[Any]],
        subscribers: dict[str, list[str]],
        types: dict[str, type[Any]],
        outcomes: OutcomeBoard,
        load: SagaLoader,
    ) -> None:
        super().__init__()
        self.env = env
        self.participants = participants
        self.subscribers = subscribers
        self.types = types
        self.outcomes = outcomes
        self.load = load
        self.sagas: dict[str, NativeState] = {}
        self._reply_to = functools.partial(env.tell, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if self.env.dead.is_set():
            return None
        try:
            if isinstance(message, NativePublished):
                self._published(message)
            elif isinstance(message, StartSaga):
                self._start(message)
            elif isinstance(message, Recover):
                self._recover(message)
            elif isinstance(message, Rebuild):
                self._rebuild(message.saga_id)
        except SimulatedCrash:
            return None
        except Exception:
            logger.exception("dispatcher failed on %r", message)
        return None

    def _start(self, msg: StartSaga) -> None:
        existing = self.sagas.get(msg.saga_id)
        if existing is None and not msg.fresh:
            existing = self.load(msg.saga_id)  # type: ignore[assignment]
        if existing is not None:
            if existing.definition.name != msg.definition.name or existing.digest != msg.digest:
                problem = "with a different saga or input"
                msg.accepted.set_exception(SagaIdConflict(msg.saga_id, problem))
            else:
                msg.accepted.set_result(msg.saga_id)
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

    def _recover(self, msg: Recover) -> None:
        resumed: list[str] = []
        for state in msg.states:
            if state.saga_id in self.sagas or not isinstance(state, NativeState):
                continue
            self.sagas[state.saga_id] = state
            self._deliver(state.saga_id, [(d, None) for d in state.dispatched])
            resumed.append(state.saga_id)
            self.env.crash.hit(CrashPoint.MID_RECOVERY)
        msg.done.set_result(resumed)

    def _rebuild(self, saga_id: str) -> None:
        self.env.journal.flush()
        self.sagas.pop(saga_id, None)
        state = self.load(saga_id)
        if isinstance(state, NativeState) and not state.status.terminal:
            self.sagas[saga_id] = state
            self._deliver(saga_id, [(d, None) for d in state.dispatched])

    def _commit(
        self,
        state: NativeState,
        events: list[SagaEvent],
        deliveries: list[tuple[EventDispatched, Any]],
        accepted: Future[str] | None = None,
    ) -> None:
        now = time.time()
        first = state.seq - len(events) + 1
        stream = saga_stream(state.saga_id)
        records = [
            Record(
                stream,
                first + i,
                type(e).__name__,
                _encode(e),
                now,
                state.saga_id,
                type(e).__name__ in FINAL_EVENTS,
            )
            for i, e in enumerate(events)
        ]
        outcome: Outcome | None = None
        if state.status.terminal:
            outcome = state.outcome()
            del self.sagas[state.saga_id]
        crash, me, saga_id = self.env.crash, self.actor_ref, state.saga_id

        def done(error: BaseException | None) -> None:
            if error is not None:
                if accepted is not None:
                    self.sagas.pop(saga_id, None)
                    accepted.set_exception(error)
                else:
                    self.env.tell(me, Rebuild(saga_id))
                return
            crash.hit(CrashPoint.AFTER_COMMIT)
            if accepted is not None:
                accepted.set_result(saga_id)
            self._deliver(saga_id, deliveries)
            if outcome is not None:
                self.outcomes.finish(outcome)

        self.env.append(records, done)

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
