"""The saga state machine: pure (no threads, no I/O, time passed in).

Three functions make the whole protocol:

* :func:`decide` turns an input (a reply, a timer, a cancel) into journal events, applying each
  to the state as it emits it;
* :func:`evolve` applies one event; folding a saga's journal with it rebuilds the state, which
  is all recovery needs;
* :func:`pending` says what the state is waiting for: the commands to (re)send or the timers
  to set. Recovery runs it after the fold, so a resumed saga goes through exactly the path a
  live one does; after each commit the coordinator runs :func:`follow_up`, its part for the
  commands the committed events started (a sibling still in flight is not sent again).

A stage is a lone step or a :class:`~sagactor.sagas.definition.Parallel` group: its members'
commands go out together, each with its own attempts, retries and timers, and the next stage
starts when all of them succeeded. When one fails the saga sends nothing more, waits for the
members in flight, then compensates one step at a time from the stack (see
:func:`~sagactor.sagas.state.stack_for_compensation`).

Time limits are per attempt and measure the step, not the queue: a participant reports when it
starts a handler (:class:`Began`), and :func:`begin` arms that attempt's start-to-close timer
from then. Nothing of this is journaled: after a restart the re-sent command either is
answered from the participant's inbox (it never begins again, so no clock runs out on a step
whose answer was saved) or begins afresh and reports it.
"""

from __future__ import annotations

from typing import Any

from ..actor_messages import Began, Cancel, DeadlinePassed, Reply, Resolve, Resume, Timeout, Wake
from ..messages import (
    CompensationFailed,
    CompensationStarted,
    SagaCancelled,
    SagaCompensated,
    SagaEvent,
    SagaOverdue,
    SagaResumed,
    SagaStatus,
    SagaStuck,
    StepAbandoned,
    StepCompensated,
    StepFenced,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    StepTimedOut,
)
from ..names import ACTION, COMPENSATION, RUN, SCHEDULE
from . import waits
from .children import completion
from .definition import Saga
from .effects import Effect, Finish, Send, Timer
from .starts import new_saga
from .state import Attempt, SagaState, emit, evolve

__all__ = [
    "SagaState",
    "advance",
    "begin",
    "deadline_timer",
    "decide",
    "emit",
    "evolve",
    "follow_up",
    "pending",
    "start",
    "start_stage",
    "step_started",
]


def start(
    definition: Saga, saga_id: str, mode: str, value: Any, raw: bytes, digest: str, now: float
) -> tuple[SagaState, list[SagaEvent]]:
    """A new saga and its first events: started, then its first stage's commands."""
    state, events = new_saga(definition, saga_id, mode, value, raw, digest, now)
    start_stage(state, 0, now, events)
    return state, events


def decide(state: SagaState, message: Any, now: float) -> list[SagaEvent]:
    """The events ``message`` causes; each is applied to ``state`` as it is emitted.

    Stale messages (an answer to an earlier attempt, a timer for a finished step) cause none.
    """
    events: list[SagaEvent] = []
    if isinstance(message, Reply):
        _on_reply(state, message, now, events)
    elif isinstance(message, Timeout):
        if _runs_out(state, message):
            _on_timeout(state, message, now, events)
    elif isinstance(message, Wake):
        if message.kind == ACTION:
            member = _member(state, message)
            if member is not None and member.retry_due and state.status is SagaStatus.RUNNING:
                _reach(
                    state, state.definition.index(message.step), message.attempt + 1, now, events
                )
        elif message.kind == waits.PAUSE:
            if waits.on_wake(state, message, now, events):
                advance(state, events, now)
        elif _is_compensating(state, message) and state.retry_due:
            emit(state, events, _start_compensation(state, message.attempt + 1))
    elif isinstance(message, Cancel):
        # Past the pivot the saga must complete: the cancel is dropped (the driver says so).
        if state.status is SagaStatus.RUNNING and not state.past_pivot:
            emit(state, events, SagaCancelled(reason=message.reason))
            _begin_compensation(state, events)
    elif isinstance(message, DeadlinePassed):
        if state.status is SagaStatus.RUNNING and state.due_by and not state.overdue:
            emit(state, events, SagaOverdue(deadline=state.due_by, past_pivot=state.past_pivot))
            if not state.past_pivot:
                _begin_compensation(state, events)
    elif isinstance(message, Resume) and state.status is SagaStatus.STUCK and state.stack:
        emit(state, events, SagaResumed())
        # Number on from the stuck attempts, so that a late reply or a still-pending timer of
        # an attempt before the resume can never pass for an answer to the resumed one.
        emit(state, events, _start_compensation(state, state.attempt + 1))
    elif (
        isinstance(message, Resolve)
        and state.status is SagaStatus.STUCK
        and state.stack[-1:] == [message.step]
    ):
        emit(state, events, message.event())
        _begin_compensation(state, events)
    return events


def pending(state: SagaState) -> list[Effect]:
    """What the saga waits for now: its commands, retry timers, or the end.

    A command's time limits start later: its schedule timer when it is sent
    (:meth:`Send.schedule_timer`), its run timer when its handler begins (:func:`begin`).
    """
    if state.status.terminal:
        return [Finish(state.status)]
    if state.kind == COMPENSATION:
        if state.retry_due:
            wake = Wake(state.saga_id, state.step, state.kind, state.attempt)
            return [Timer(state.retry_due, wake)]
        return [Send(state.step, COMPENSATION, state.attempt, attempt_base=state.attempt_base)]
    effects: list[Effect] = [*waits.timers(state)]
    for name, member in state.running.items():
        if member.waiting and not member.retry_due:
            continue  # a sleep or a wait: its timer is among waits.timers
        if member.retry_due:
            wake = Wake(state.saga_id, name, ACTION, member.attempt)
            effects.append(Timer(member.retry_due, wake))
        else:
            wait = state.definition.step(name).schedule_timeout or 0.0
            effects.append(Send(name, ACTION, member.attempt, wait))
    return effects


def follow_up(state: SagaState, events: list[SagaEvent]) -> list[Effect]:
    """The part of :func:`pending` that committed ``events`` call for: the commands they
    started and the retries they scheduled (a command still in flight is not sent again)."""
    touched = {
        (event.step, ACTION if isinstance(event, StepStarted | StepRetrying) else COMPENSATION)
        for event in events
        if isinstance(event, StepStarted | StepRetrying | CompensationStarted | CompensationFailed)
    } | waits.touched(events)
    return [
        effect
        for effect in pending(state)
        if isinstance(effect, Finish)
        or (isinstance(effect, Send) and (effect.step, effect.kind) in touched)
        or (
            isinstance(effect, Timer)
            and isinstance(effect.message, Wake)
            and (effect.message.step, effect.message.kind) in touched
        )
    ]


def deadline_timer(state: SagaState) -> list[Effect]:
    """The saga's deadline timer, while it can still pass: armed at the start and again by a
    recovery, from the journaled wall-clock time (a restart does not restart the clock)."""
    if not state.due_by or state.overdue or state.status is not SagaStatus.RUNNING:
        return []
    return [Timer(state.due_by, DeadlinePassed(state.saga_id))]


def begin(state: SagaState, message: Began) -> list[Effect]:
    """An awaited command's handler began: note it and arm its start-to-close timer.

    An earlier attempt of the same command that begins late counts too (its message key is
    the same: the step is running). Changes only the runtime-only ``began``; no event.
    """
    if state.status.terminal:
        return []
    if message.kind == ACTION:
        member = state.running.get(message.step)
        if member is None or not member.in_flight or message.attempt > member.attempt:
            return []
        member.began, attempt = message.at, member.attempt
    else:
        if (
            message.step != state.step
            or not state.undoing
            or message.attempt > state.attempt
            or state.status is not SagaStatus.COMPENSATING
        ):
            return []
        state.began, attempt = message.at, state.attempt
    limit = state.definition.step(message.step).limit(message.kind)
    if not limit:
        return []
    timeout = Timeout(state.saga_id, message.step, message.kind, attempt, RUN, message.at)
    return [Timer(message.at + limit, timeout)]


def advance(state: SagaState, events: list[SagaEvent], now: float) -> None:
    """After a step's outcome is applied: start the next stage once the current one has no
    member left (or complete), start compensating once a failed stage has drained, or go on
    to the next compensation. Shared by both modes (choreography's routing calls it)."""
    if state.status is SagaStatus.RUNNING:
        if not state.running and events and isinstance(events[-1], StepSucceeded):
            following = state.definition.stage(events[-1].step) + 1
            if following < len(state.definition.stages):
                start_stage(state, following, now, events)
            else:
                emit(state, events, completion(state))  # a child saga is held
    elif state.status is SagaStatus.COMPENSATING:
        drained = state.kind == ACTION and not state.running
        undone = state.kind == COMPENSATION and isinstance(events[-1], StepCompensated | StepFenced)
        if drained or undone:
            _begin_compensation(state, events)


# -- internals ---------------------------------------------------------------------------------


def start_stage(state: SagaState, stage: int, now: float, events: list[SagaEvent]) -> None:
    """Start every step of stage ``stage``: its commands, sleeps and waits."""
    for step in state.definition.stages[stage]:
        _reach(state, state.definition.index(step.name), 1, now, events)


def _reach(state: SagaState, index: int, attempt: int, now: float, events: list[SagaEvent]) -> None:
    """Start attempt ``attempt`` of step ``index``: its command, or its sleep or wait."""
    emit(state, events, step_started(state, index, attempt, now))
    if waits.arrive(state, state.definition.steps[index], now, events):
        advance(state, events, now)


def _member(state: SagaState, message: Timeout | Wake | Reply) -> Attempt | None:
    """The running action ``message`` is about, at the attempt it names."""
    member = state.running.get(message.step)
    if state.status.terminal or member is None or message.attempt != member.attempt:
        return None
    return member


def _is_compensating(state: SagaState, message: Timeout | Wake | Reply) -> bool:
    return (
        not state.status.terminal
        and state.kind == COMPENSATION
        and message.step == state.step
        and message.attempt == state.attempt
    )


def step_started(state: SagaState, index: int, attempt: int, now: float) -> StepStarted:
    """The event that sends attempt ``attempt`` of step ``index``'s action at ``now``."""
    step = state.definition.steps[index]
    deadline = now + step.schedule_timeout if step.schedule_timeout else 0.0
    return StepStarted(step=step.name, attempt=attempt, deadline=deadline)


def _start_compensation(state: SagaState, attempt: int) -> CompensationStarted:
    return CompensationStarted(step=state.stack[-1], attempt=attempt)


def _runs_out(state: SagaState, timeout: Timeout) -> bool:
    """Whether ``timeout`` is for an attempt the saga awaits, and still true of it."""
    if timeout.kind == ACTION:
        member = _member(state, timeout)
        if member is None or not member.in_flight:
            return False
        began = member.began
    else:
        if not (_is_compensating(state, timeout) and state.undoing):
            return False
        began = state.began
    if timeout.limit == SCHEDULE:
        return timeout.kind == ACTION and not began
    return bool(began) and timeout.since == began


def _on_timeout(state: SagaState, timeout: Timeout, now: float, events: list[SagaEvent]) -> None:
    """An attempt ran out of time: retry it under the step's policy (its message key is the
    same, so a copy still running applies at most once), in doubt when attempts run out (or
    when a sibling in its group failed: nothing is retried then)."""
    step = state.definition.step(timeout.step)
    if timeout.kind == COMPENSATION:
        error = f"timed out after {step.compensation_timeout}s"
        _compensation_error(state, error, retryable=True, now=now, events=events)
        return
    if timeout.limit == SCHEDULE:
        error = f"not started within {step.schedule_timeout}s"
    else:
        error = f"timed out after {step.timeout}s"
    policy = step.retry
    retries = timeout.attempt < policy.max_attempts and issubclass(TimeoutError, policy.retry_on)
    if (retries or step.retriable) and state.status is SagaStatus.RUNNING:
        due = now + policy.delay(timeout.attempt)
        retrying = StepRetrying(step=step.name, attempt=timeout.attempt, error=error, due=due)
        emit(state, events, retrying)
        return
    emit(state, events, StepTimedOut(step=step.name, attempt=timeout.attempt, limit=timeout.limit))
    advance(state, events, now)


def _begin_compensation(state: SagaState, events: list[SagaEvent]) -> None:
    if state.stack:
        emit(state, events, _start_compensation(state, 1))
    else:
        emit(state, events, SagaCompensated(reason=state.reason))


def _on_reply(state: SagaState, reply: Reply, now: float, events: list[SagaEvent]) -> None:
    if reply.kind == ACTION:
        _on_action_reply(state, reply, now, events)
        return
    if not _is_compensating(state, reply) or state.retry_due:
        return
    if state.status is not SagaStatus.COMPENSATING:
        return
    if reply.outcome == "ok":
        if state.definition.step(reply.step).compensable:
            emit(state, events, StepCompensated(step=reply.step))
        else:  # the participant fenced it and says whether it had run
            emit(state, events, StepFenced(step=reply.step, outcome=reply.reason or "refused"))
        advance(state, events, now)
        return
    _compensation_error(state, reply.reason, retryable=True, now=now, events=events)


def _on_action_reply(state: SagaState, reply: Reply, now: float, events: list[SagaEvent]) -> None:
    member = state.running.get(reply.step)
    if state.status.terminal or member is None:
        return
    if reply.outcome == "ok":
        # Any attempt's success counts: the message id is the same on every attempt, and
        # the participant's inbox applied the action once.
        emit(state, events, StepSucceeded(step=reply.step, result=reply.raw))
        state.results[reply.step] = reply.result
        advance(state, events, now)
        return
    if reply.attempt != member.attempt or member.retry_due:
        return
    step = state.definition.step(reply.step)
    policy = step.retry
    retries = reply.outcome == "error" and reply.retryable
    running = state.status is SagaStatus.RUNNING  # else a sibling failed: no more retries
    if running and (step.retriable or (retries and reply.attempt < policy.max_attempts)):
        due = now + policy.delay(reply.attempt)
        emit(
            state,
            events,
            StepRetrying(step=reply.step, attempt=reply.attempt, error=reply.reason, due=due),
        )
        return
    business = reply.outcome == "failed"
    emit(
        state,
        events,
        StepAbandoned(
            step=reply.step, attempt=reply.attempt, reason=reply.reason, business=business
        ),
    )
    advance(state, events, now)


def _compensation_error(
    state: SagaState, error: str, *, retryable: bool, now: float, events: list[SagaEvent]
) -> None:
    policy = state.definition.step(state.step).compensation_retry
    tries = state.attempt - state.attempt_base
    retries = retryable and tries < policy.max_attempts
    due = now + policy.delay(tries) if retries else 0.0  # 0: given up
    failed = CompensationFailed(step=state.step, attempt=state.attempt, error=error, due=due)
    emit(state, events, failed)
    if not retries:
        reason = f"compensation of {state.step!r} failed after {tries} attempt(s): {error}"
        emit(state, events, SagaStuck(reason=reason))
