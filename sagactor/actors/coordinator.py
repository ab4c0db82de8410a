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
from ..messages import SagaEvent, SagaStatus, StepSucceeded
from ..names import ACTION
from ..sagas.choreography import react
from ..sagas.effects import Effect, Send, Timer
from ..sagas.forks import start_fork
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
from ..sagas.queueing import admit, cancel_queued, start_queued
from ..sagas.waits import on_signal, refusal
from .children import HELD, ChildSteps, Release
from .flows import FlowEnded
from .nested import StartNested
from .recomputable import acts_before_commit
from .saga_actor import SagaActor

__all__ = ["Coordinator"]

logger = logging.getLogger("sagactor")


# What moves a saga on (the machine decides what it means).
Driving = Reply | Timeout | Wake | DeadlinePassed | Cancel | Resume | Resolve
_DRIVING = (Reply, Timeout, Wake, DeadlinePassed, Cancel, Resume, Resolve)


class Coordinator(SagaActor):
    role = "coordinator"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.children = ChildSteps(self)

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
            for name in self.env.admission.names():  # running sagas took their slots first
                self._admit_due(name)
        elif isinstance(message, Rebuild):
            self.rebuild(message.saga_id, self._reloaded)
        elif isinstance(message, Release):
            self.children.release(message)
        elif isinstance(message, FlowEnded):
            self.children.flows.ended(message)
        elif isinstance(message, StartNested) and self.children.admits(message):
            self._start(message.start)

    # -- inputs --------------------------------------------------------------------------------

    def _start(self, msg: StartSaga) -> None:
        if self.already_started(msg):
            return
        name, limit, slots = msg.definition.name, msg.definition.max_in_flight, self.env.admission
        args = (msg.definition, msg.saga_id, msg.mode, msg.input, msg.raw, msg.digest, clock.now())
        if msg.fork is None and slots.must_wait(name, limit):
            ticket = slots.ticket()
            state, events = start_queued(*args, priority=msg.priority, ticket=ticket)
            slots.enqueue(name, msg.saga_id, msg.priority, ticket)
        else:  # a fork is an operator's act: it runs at once, as a resumed saga does
            begin = start if msg.fork is None else functools.partial(start_fork, fork=msg.fork)
            state, events = begin(*args)
            if limit is not None:
                slots.take(name, msg.saga_id)
        if limit is not None:  # a start that cannot be journaled gives its place back
            msg.accepted.add_done_callback(functools.partial(self._unaccepted, state))
        self.sagas[msg.saga_id] = state
        self._commit(state, events, accepted=msg.accepted, timers=deadline_timer(state))
        state.plain = True  # started here: its replies' decisions may act early (recomputable)

    def _unaccepted(self, state: SagaState, accepted: Any) -> None:
        if accepted.exception() is not None and not self.env.dead.is_set():
            self.slot_freed(state)

    def slot_freed(self, state: SagaState) -> None:
        limit = state.definition.max_in_flight
        if limit is not None:
            self.env.admission.release(state.definition.name, state.saga_id)
            self._admit_due(state.definition.name)

    def _admit_due(self, name: str) -> None:
        """Give the free slots of saga ``name`` to the queued sagas first in line."""
        for saga_id in self.env.admission.due(name):
            state = self.sagas.get(saga_id)
            if state is None or state.status is not SagaStatus.QUEUED:
                self.env.admission.release(name, saga_id)  # gone meanwhile (cancelled)
                continue
            self._commit(state, admit(state, clock.now()), timers=deadline_timer(state))

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
        if isinstance(message, Cancel) and state.held:
            logger.warning("saga %s: the cancel is dropped: %s", state.saga_id, HELD)
            return
        if state.status is SagaStatus.QUEUED:  # nothing ran: only a cancel changes it
            events = cancel_queued(state, message.reason) if isinstance(message, Cancel) else []
        else:
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

    def _reloaded(self, state: SagaState) -> None:
        """Reloaded after a failed commit: an admission that failed waits again, first in line."""
        self._resume(state)
        if state.status is SagaStatus.QUEUED:
            self._admit_due(state.definition.name)

    def _resume(self, state: SagaState) -> None:
        limit = state.definition.max_in_flight
        if limit is not None:
            name, queue = state.definition.name, state.queue
            self.env.admission.recovered(name, state.saga_id, state.status, queue, limit)
        self._perform(state, [*pending(state), *deadline_timer(state)])
        self.children.resumed(state)

    resume = _resume  # for ChildSteps

    def commit_child(
        self, state: SagaState, events: list[SagaEvent], timers: list[Effect] | None = None
    ) -> None:
        """Journal a child saga's ``events`` (see :class:`ChildSteps`)."""
        self._commit(state, events, timers=timers)

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
        perform = functools.partial(self._settled, state, effects, events)
        self.commit(state, events, cause, perform, accepted, wait=not early)

    def _settled(self, state: SagaState, effects: list[Effect], events: list[SagaEvent]) -> None:
        self._perform(state, effects)
        self.children.settled(state, events)

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
        if step.child is not None:  # no participant: the child saga runs here
            self.children.send(state, effect)
            return
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
