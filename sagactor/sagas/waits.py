"""Steps that wait: a :func:`~sagactor.sagas.steps.Sleep` for a time, a
:func:`~sagactor.sagas.steps.WaitFor` for a signal from outside. Pure, like the machine that
calls it.

Neither sends a command. When the saga reaches one, its due time is journaled (a sleep's end,
``SleepStarted``; a wait's timeout, ``WaitStarted``) and a timer is armed for it: a recovery
re-arms the journaled due time, so a restart never restarts the clock, and a sleeping saga
costs one entry in the timer service's heap, not a thread.

A signal (``Runtime.signal``) is journaled in the saga's stream (``SignalReceived``) whatever
the saga is doing, once per signal id: a wait for its name consumes the first one kept, at
once if it is waiting, or when it gets there. A wait that times out fails its step (the saga
compensates the steps before it); past the pivot, where nothing can be compensated, it waits
again (``StepRetrying``: the timeout shows in the saga's status).
"""

from __future__ import annotations

import datetime

import msgspec

from ..actor_messages import Signal, Wake
from ..errors import SignalRefused
from ..messages import (
    SagaEvent,
    SagaStatus,
    SignalReceived,
    SleepStarted,
    StepAbandoned,
    StepRetrying,
    StepSucceeded,
    WaitStarted,
)
from .effects import Timer
from .state import SagaState, emit
from .steps import Step

__all__ = ["PAUSE", "arrive", "describe", "on_signal", "on_wake", "refusal", "timers", "touched"]

PAUSE = "pause"
"""The ``Wake`` kind of a sleep's end and of a wait's timeout."""

_NONE = msgspec.Raw(msgspec.msgpack.encode(None))  # a sleep's result


def arrive(state: SagaState, step: Step, now: float, events: list[SagaEvent]) -> bool:
    """The saga reached ``step`` (its ``StepStarted`` is applied): journal a sleep's due time,
    or consume a signal kept for a wait, or journal that the wait begins. True when the step
    succeeded at once (the caller advances the saga)."""
    pause = step.pause
    if pause is None:
        return False
    attempt = state.running[step.name].attempt
    if not pause.signal:
        emit(state, events, SleepStarted(step=step.name, attempt=attempt, due=pause.due(now)))
        return False
    kept = state.signals.get(pause.signal)
    if kept:
        emit(state, events, StepSucceeded(step=step.name, result=kept[0]))
        return True
    due = pause.due(now)
    emit(state, events, WaitStarted(step=step.name, attempt=attempt, signal=pause.signal, due=due))
    return False


def on_wake(state: SagaState, wake: Wake, now: float, events: list[SagaEvent]) -> bool:
    """A sleep ended or a wait timed out (a stale timer changes nothing). True when the step
    has an outcome (the caller advances the saga)."""
    member = state.running.get(wake.step)
    if (
        state.status is not SagaStatus.RUNNING
        or member is None
        or not member.waiting
        or member.attempt != wake.attempt
        or member.retry_due
        or not member.wake_due
    ):
        return False
    pause = state.definition.step(wake.step).pause
    assert pause is not None
    if not pause.signal:
        emit(state, events, StepSucceeded(step=wake.step, result=_NONE))
        return True
    error = f"no {pause.signal!r} signal within {pause.timeout}s"
    if state.past_pivot:  # nothing can be undone any more: wait again, and say so
        emit(
            state, events, StepRetrying(step=wake.step, attempt=wake.attempt, error=error, due=now)
        )
        return False
    failed = StepAbandoned(step=wake.step, attempt=wake.attempt, reason=error, business=True)
    emit(state, events, failed)
    return True


def on_signal(state: SagaState, signal: Signal, events: list[SagaEvent]) -> bool:
    """Journal ``signal`` (the caller refused duplicates and ended sagas) and let a wait for
    it consume it. True when a waiting step succeeded (the caller advances the saga)."""
    received = SignalReceived(name=signal.name, signal_id=signal.signal_id, payload=signal.payload)
    emit(state, events, received)
    waiting = [
        name
        for name, member in state.running.items()
        if member.waiting and not member.retry_due and _signal_of(state, name) == signal.name
    ]
    if not waiting:
        return False  # kept until a wait for it is reached
    emit(state, events, StepSucceeded(step=waiting[0], result=signal.payload))
    return True


def refusal(state: SagaState | None, signal: Signal) -> SignalRefused | None:
    """Why ``signal`` cannot be delivered to ``state`` (None: it can). A duplicate is not
    refused here: it is answered as one, and changes nothing."""
    name = signal.name
    if state is None or state.status.terminal:
        status = f" ({state.status})" if state is not None else ""
        return SignalRefused(signal.saga_id, name, f"the saga has ended{status}")
    if state.status not in (SagaStatus.RUNNING, SagaStatus.QUEUED):  # queued: kept for later
        return SignalRefused(
            signal.saga_id, name, f"the saga is {state.status}: no step will wait any more"
        )
    pauses = [s.pause for s in state.definition.steps if s.pause is not None and s.pause.signal]
    wanted = [p for p in pauses if p.signal == name]
    if not wanted:
        waits_for = ", ".join(sorted({repr(p.signal) for p in pauses})) or "none"
        return SignalRefused(
            signal.saga_id,
            name,
            f"{state.definition.name!r} waits for no such signal (it waits for: {waits_for})",
        )
    if wanted[0].type is not None:
        try:
            msgspec.msgpack.decode(signal.payload, type=wanted[0].type)
        except msgspec.ValidationError as error:
            return SignalRefused(
                signal.saga_id, name, f"the payload does not fit {wanted[0].type!r}: {error}"
            )
    return None


def timers(state: SagaState) -> list[Timer]:
    """The timers of the waiting steps: a sleep's end, a wait's timeout."""
    return [
        Timer(member.wake_due, Wake(state.saga_id, name, PAUSE, member.attempt))
        for name, member in state.running.items()
        if member.waiting and member.wake_due and not member.retry_due
    ]


def touched(events: list[SagaEvent]) -> set[tuple[str, str]]:
    """The ``(step, PAUSE)`` pairs whose timers ``events`` armed (for ``follow_up``)."""
    return {(e.step, PAUSE) for e in events if isinstance(e, SleepStarted | WaitStarted)}


def describe(state: SagaState) -> str:
    """What a running saga waits for, for its status ("" when no step waits)."""
    if state.status is not SagaStatus.RUNNING:
        return ""
    for name, member in state.running.items():
        if not member.waiting or member.retry_due:
            continue
        signal = _signal_of(state, name)
        when = _clock(member.wake_due) if member.wake_due else ""
        if not signal:
            return f"sleeping until {when}" if when else "sleeping"
        return f"waiting for {signal!r}" + (f" until {when}" if when else "")
    return ""


def _signal_of(state: SagaState, step: str) -> str:
    pause = state.definition.step(step).pause
    return pause.signal if pause is not None else ""


def _clock(due: float) -> str:
    return datetime.datetime.fromtimestamp(due, datetime.UTC).isoformat(timespec="seconds")
