"""The orchestration coordinator: one actor driving many saga instances.

It never blocks on a participant: a command carries a reply address and the reply comes back
as a message. It never acts before it has written down why: each decision's events are
journaled first, and the commands and timers they call for are issued from the commit's
callback. Appends are pipelined, so one group commit serves many sagas at once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import msgspec
import pykka

from ..actors.environment import Environment
from ..crashpoints import CrashPoint, SimulatedCrash
from ..errors import SagaIdConflict
from ..messages import FINAL_EVENTS, Command, Outcome, SagaEvent, StepSucceeded, StepTimedOut
from ..persistence.journal import Record
from ..persistence.recovery import saga_stream
from .choreography import Published, react
from .machine import (
    ACTION,
    Cancel,
    Effect,
    Finish,
    Reply,
    Resume,
    SagaState,
    Send,
    Timeout,
    Timer,
    Wake,
    decide,
    pending,
    start,
)
from .outcomes import OutcomeBoard, outcome_of

__all__ = ["Coordinator", "Rebuild", "Recover", "StartSaga"]

logger = logging.getLogger("sagactor.coordinator")
_encode = msgspec.msgpack.encode


class StartSaga(msgspec.Struct, frozen=True, kw_only=True):
    definition: Any  # a Saga, or a Choreography for the native dispatcher
    saga_id: str
    mode: str
    input: Any
    raw: bytes
    digest: str
    fresh: bool
    accepted: Future[str]


class Recover(msgspec.Struct, frozen=True):
    states: list[SagaState]
    done: Future[list[str]]


class Rebuild(msgspec.Struct, frozen=True):
    """A commit of this saga failed: reload it from the journal and resume."""

    saga_id: str


SagaLoader = Callable[[str], SagaState | None]


class Coordinator(pykka.ThreadingActor):
    def __init__(
        self,
        env: Environment,
        participants: dict[str, pykka.ActorRef[Any]],
        outcomes: OutcomeBoard,
        load: SagaLoader,
    ) -> None:
        super().__init__()
        self.env = env
        self.participants = participants
        self.outcomes = outcomes
        self.load = load
        self.sagas: dict[str, SagaState] = {}
        self._reply_to = functools.partial(env.tell, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if self.env.dead.is_set():
            return None
        try:
            if isinstance(message, Published):
                self._published(message)
            elif isinstance(message, Reply | Timeout | Wake | Cancel | Resume):
                self._advance(message)
            elif isinstance(message, StartSaga):
                self._start(message)
            elif isinstance(message, Recover):
                self._recover(message)
            elif isinstance(message, Rebuild):
                self._rebuild(message.saga_id)
        except SimulatedCrash:
            return None
        except Exception:
            logger.exception("coordinator failed on %r", message)
        return None

    # -- inputs --------------------------------------------------------------------------------

    def _start(self, msg: StartSaga) -> None:
        existing = self.sagas.get(msg.saga_id)
        if existing is None and not msg.fresh:
            existing = self.load(msg.saga_id)
        if existing is not None:
            if existing.definition.name != msg.definition.name:
                problem = f"by saga {existing.definition.name!r}"
                msg.accepted.set_exception(SagaIdConflict(msg.saga_id, problem))
            elif existing.digest != msg.digest:
                msg.accepted.set_exception(SagaIdConflict(msg.saga_id, "with a different input"))
            else:
                msg.accepted.set_result(msg.saga_id)
            return
        state, events = start(
            msg.definition, msg.saga_id, msg.mode, msg.input, msg.raw, msg.digest, time.time()
        )
        self.sagas[msg.saga_id] = state
        self._commit(state, events, accepted=msg.accepted)

    def _advance(self, message: Reply | Timeout | Wake | Cancel | Resume) -> None:
        state = self.sagas.get(message.saga_id)
        if state is None and isinstance(message, Resume | Cancel):
            state = self.load(message.saga_id)
            if state is not None:
                self.sagas[message.saga_id] = state
        if state is None:
            return  # finished, or a late message for a saga this runtime no longer drives
        if state.mode == "choreography" and isinstance(message, Timeout | Wake):
            if message.kind == ACTION and message.attempt == state.attempt:
                timed_out = StepTimedOut(step=message.step, attempt=message.attempt)
                events = react(state, timed_out, time.time())
            else:
                events = []  # participants retry their own compensations in choreography
        else:
            events = decide(state, message, time.time())
        if events:
            self._commit(state, events)

    def _published(self, message: Published) -> None:
        state = self.sagas.get(message.saga_id)
        if state is None:
            return
        events = react(state, message.event, time.time())
        if events:
            if isinstance(message.event, StepSucceeded):
                state.results[message.event.step] = message.result
            self._commit(state, events)

    def _recover(self, msg: Recover) -> None:
        resumed = []
        for state in msg.states:
            if state.saga_id in self.sagas:
                continue
            self.sagas[state.saga_id] = state
            self._perform(state, pending(state), None)
            resumed.append(state.saga_id)
            self.env.crash.hit(CrashPoint.MID_RECOVERY)
        msg.done.set_result(resumed)

    def _rebuild(self, saga_id: str) -> None:
        self.env.journal.flush()  # let the failed group's followers fail first
        self.sagas.pop(saga_id, None)
        state = self.load(saga_id)
        if state is None or state.status.terminal:
            return
        self.sagas[saga_id] = state
        self._perform(state, pending(state), None)

    # -- journal, then act ---------------------------------------------------------------------

    def _commit(
        self, state: SagaState, events: list[SagaEvent], accepted: Future[str] | None = None
    ) -> None:
        stream = saga_stream(state.saga_id)
        now = time.time()
        first = state.seq - len(events) + 1
        cause = f"{state.saga_id}/{state.step}/{state.kind}"
        records = [
            Record(
                stream,
                first + i,
                type(e).__name__,
                _encode(e),
                now,
                cause,
                type(e).__name__ in FINAL_EVENTS,
            )
            for i, e in enumerate(events)
        ]
        effects = pending(state)
        outcome = None
        if state.status.terminal:
            state.ended_at = now
            outcome = outcome_of(state)
            del self.sagas[state.saga_id]
        crash = self.env.crash
        me = self.actor_ref
        saga_id = state.saga_id

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
            self._perform(state, effects, outcome)
            self.env.commits.notify(saga_id)  # wake whoever watches this saga

        self.env.append(records, done)

    def _perform(self, state: SagaState, effects: list[Effect], outcome: Outcome | None) -> None:
        """Issue what a committed transition calls for. Runs on the committing thread."""
        if self.env.dead.is_set():
            return
        for effect in effects:
            if isinstance(effect, Send):
                self._send(state, effect)
            elif isinstance(effect, Timer):
                me, message = self.actor_ref, effect.message
                wake = functools.partial(self.env.tell, me, message)
                self.env.timers.schedule(effect.due, wake)
            elif isinstance(effect, Finish):
                self.outcomes.finish(outcome or outcome_of(state))

    def _send(self, state: SagaState, effect: Send) -> None:
        step = state.definition.step(effect.step)
        policy = step.retry if effect.kind == ACTION else step.compensation_retry
        self.env.tell(
            self.participants[step.participant],
            Command(
                saga_id=state.saga_id,
                step=step.name,
                kind=effect.kind,
                name=step.action,
                attempt=effect.attempt,
                input=state.input,
                reply_to=self._reply_to,
                retry_on=policy.retry_on,
                mode=state.mode,
                policy=policy,
                timeout=step.timeout or 0.0,
            ),
        )
