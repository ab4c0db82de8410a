"""The orchestration coordinator: one actor driving many saga instances.

It never blocks on a participant: a command carries a reply address and the reply comes back
as a message. It never acts before it has written down why: each decision's events are
journaled first, and the commands and timers they call for are issued from the commit's
callback (see :class:`~sagactor.actors.saga_actor.SagaActor`). Appends are pipelined, so one
group commit serves many sagas at once. Step-list choreography runs here too: then the
participants' published events are routed by :func:`~sagactor.sagas.choreography.react`,
while timers, retries, cancels and resumes follow the machine in both modes.

Time limits measure the step, not the queue: a command's schedule timer starts when it is
sent, its run timer when the participant reports that its handler began (``Began``, a
message of its own, never journaled; sent only for steps that have a time limit).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from .. import clock
from ..actor_messages import (
    Began,
    Cancel,
    Command,
    DeadlinePassed,
    Published,
    Rebuild,
    Recover,
    Reply,
    Resolve,
    Resume,
    Signal,
    StartSaga,
    Timeout,
    Wake,
)
from ..messages import SagaEvent, StepSucceeded
from ..names import ACTION
from ..sagas.choreography import react
from ..sagas.effects import Effect, Send, Timer
from ..sagas.machine import (
    SagaState,
    advance,
    begin,
    deadline_timer,
    decide,
    follow_up,
    pending,
    start,
)
from ..sagas.outcomes import earlier_results
from ..sagas.waits import on_signal, refusal
from .recomputable import acts_before_commit
from .saga_actor import SagaActor

__all__ = ["Coordinator"]

logger = logging.getLogger("sagactor")


# What moves a saga on (the machine decides what it means).
Driving = Reply | Timeout | Wake | DeadlinePassed | Cancel | Resume | Resolve
_DRIVING = (Reply, Timeout, Wake, DeadlinePassed, Cancel, Resume, Resolve)


class Coordinator(SagaActor):
    role = "coordinator"

    def receive(self, message: Any) -> None:
        if isinstance(message, Published):
            self._published(message)
        elif isinstance(message, Began):
            self._began(message)
        elif isinstance(
            message, Reply | Timeout | Wake | DeadlinePassed | Cancel | Resume | Resolve
        ):
            self._advance(message)
        elif isinstance(message, Signal):
            self._signal(message)
        elif isinstance(message, StartSaga):
            self._start(message)
        elif isinstance(message, Recover):
            self.recover(message, self._resume)
        elif isinstance(message, Rebuild):
            self.rebuild(message.saga_id, self._resume)

    # -- inputs --------------------------------------------------------------------------------

    def _start(self, msg: StartSaga) -> None:
        if self.already_started(msg):
            return
        state, events = start(
            msg.definition, msg.saga_id, msg.mode, msg.input, msg.raw, msg.digest, clock.now()
        )
        self.sagas[msg.saga_id] = state
        self._commit(state, events, accepted=msg.accepted, timers=deadline_timer(state))
        state.plain = True  # started here: its replies' decisions may act early (recomputable)

    def _advance(
        self, message: Reply | Timeout | Wake | DeadlinePassed | Cancel | Resume | Resolve
    ) -> None:
        state = self.sagas.get(message.saga_id)
        if state is None and isinstance(message, Resume | Cancel | Resolve):
            state = self.load(message.saga_id)
            if state is not None:
                self.sagas[message.saga_id] = state
        if state is None:
            return  # finished, or a late message for a saga this runtime no longer drives
        events = decide(state, message, clock.now())
        if isinstance(message, Cancel) and state.past_pivot and not state.status.terminal:
            logger.warning(
                "saga %s: the cancel is dropped: its pivot %r succeeded, so it completes",
                state.saga_id,
                state.definition.pivot,
            )
        if events:
            self._commit(state, events, early=acts_before_commit(state, message, events))

    def _signal(self, message: Signal) -> None:
        state = self.sagas.get(message.saga_id) or self.load(message.saga_id)
        problem = refusal(state, message)
        if state is not None and message.signal_id in state.signal_ids:
            message.delivered.set_result("")  # a duplicate: journaled once already
        elif problem is not None:
            message.delivered.set_exception(problem)
        elif state is not None:
            self.sagas[message.saga_id] = state
            events: list[SagaEvent] = []
            if on_signal(state, message, events):
                advance(state, events, clock.now())
            self._commit(state, events, accepted=message.delivered)

    def _began(self, message: Began) -> None:
        state = self.sagas.get(message.saga_id)
        if state is not None:
            self._perform(state, begin(state, message))

    def _published(self, message: Published) -> None:
        state = self.sagas.get(message.saga_id)
        if state is None:
            return
        events = react(state, message.event, clock.now())
        if events:
            if isinstance(message.event, StepSucceeded):
                state.results[message.event.step] = message.result
            self._commit(state, events)

    def _resume(self, state: SagaState) -> None:
        self._perform(state, [*pending(state), *deadline_timer(state)])

    # -- journal, then act ---------------------------------------------------------------------

    def _commit(
        self,
        state: SagaState,
        events: list[SagaEvent],
        accepted: Any = None,
        timers: list[Effect] | None = None,
        *,
        early: bool = False,
    ) -> None:
        if not early:
            state.plain = False  # see recomputable: once a decision waits, every later one does
        effects = [*follow_up(state, events), *(timers or [])]
        cause = f"{state.saga_id}/{state.step}/{state.kind}"
        perform = functools.partial(self._perform, state, effects)
        self.commit(state, events, cause, perform, accepted, wait=not early)

    def _perform(self, state: SagaState, effects: list[Effect]) -> None:
        """Issue what a committed transition calls for (on this actor's turn)."""
        if self.env.dead.is_set():
            return
        for effect in effects:
            if isinstance(effect, Send):
                self._send(state, effect)
            elif isinstance(effect, Timer):
                wake = functools.partial(self.env.tell, self.actor_ref, effect.message)
                self.env.timers.schedule(effect.due, wake)
            # A Finish is published by SagaActor.commit, once the end is durable.

    def _send(self, state: SagaState, effect: Send) -> None:
        step = state.definition.step(effect.step)
        action = effect.kind == ACTION
        policy = step.retry if action else step.compensation_retry
        limit = step.limit(effect.kind)
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
                attempt_base=effect.attempt_base,
                timeout=limit,
                report_start=bool(limit or effect.schedule_timeout),
                fence=not (action or step.compensable),
                retriable=step.retriable,
                results=earlier_results(state, step.name, effect.kind, self.outcomes.result_types),
            ),
        )
        timer = effect.schedule_timer(state.saga_id, clock.now())
        if timer is not None:
            self._perform(state, [timer])
