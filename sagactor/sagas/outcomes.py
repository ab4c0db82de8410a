"""Where finished sagas' outcomes meet the callers waiting for them (thread-safe).

The board holds a waiter only while someone waits: an outcome that nobody awaits is not kept
(a caller who asks after the end reads it from the journal). So a waiting caller first
registers, then checks the journal, and removes its waiter when it stops waiting: a saga that
ends after the registration completes the waiter, one that ended before it is in the journal.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from typing import Any

import msgspec

from ..messages import Outcome
from .definition import Saga
from .machine import SagaState
from .native import NativeState

__all__ = ["OutcomeBoard", "decode_result", "outcome_of", "result_type"]

ResultTypes = Mapping[tuple[str, str], Any]
"""``(participant, action) -> the type its action declares it returns``."""


def decode_result(raw: msgspec.Raw | bytes, wanted: Any) -> Any:
    """A journaled result as the action's declared type; untyped if it no longer fits it."""
    try:
        return msgspec.msgpack.decode(raw, type=wanted)
    except msgspec.ValidationError:  # the declaration changed since the result was journaled
        return msgspec.msgpack.decode(raw)


def result_type(types: ResultTypes, definition: Saga, step: str) -> Any:
    """The type a step's result decodes to (``Any`` for an unknown step or participant)."""
    try:
        known = definition.step(step)
    except KeyError:
        return Any
    return types.get((known.participant, known.action), Any)


def outcome_of(state: SagaState | NativeState, types: ResultTypes | None = None) -> Outcome:
    """The saga's outcome; journaled results decode to the type their action declares, so
    an outcome read after a restart equals the live one."""
    if isinstance(state, NativeState):
        return state.outcome()
    results = {
        step: decode_result(value, result_type(types or {}, state.definition, step))
        if isinstance(value, msgspec.Raw)
        else value
        for step, value in state.results.items()
    }
    return Outcome(
        saga_id=state.saga_id,
        saga=state.definition.name,
        status=state.status,
        reason=state.reason,
        results=results,
        compensated=tuple(state.compensated),
    )


class OutcomeBoard:
    """Waiters per saga, while they wait; ``result_types`` types the outcomes' results."""

    def __init__(self, result_types: ResultTypes | None = None) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Future[Outcome]]] = {}
        self._listeners: list[Callable[[Outcome], Any]] = []
        self._failure: BaseException | None = None
        self.result_types: ResultTypes = result_types if result_types is not None else {}
        self.finished = 0

    def outcome(self, state: SagaState | NativeState) -> Outcome:
        return outcome_of(state, self.result_types)

    def wait(self, saga_id: str) -> Future[Outcome]:
        """A new waiter for the saga's end. Check the journal next (the saga may have ended
        already), and pass the waiter to :meth:`release` once done with it."""
        future: Future[Outcome] = Future()
        with self._lock:
            if self._failure is not None:  # asked after the runtime died: say so at once
                future.set_exception(self._failure)
                return future
            self._waiters.setdefault(saga_id, []).append(future)
        return future

    def release(self, saga_id: str, future: Future[Outcome]) -> None:
        """The caller no longer waits (done, timed out or cancelled)."""
        with self._lock:
            waiting = self._waiters.get(saga_id)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiters[saga_id]

    def finish(self, outcome: Outcome) -> None:
        with self._lock:
            waiting = self._waiters.pop(outcome.saga_id, [])
            self.finished += 1
            listeners = list(self._listeners)
        for future in waiting:
            with contextlib.suppress(InvalidStateError):  # the runtime died meanwhile
                future.set_result(outcome)
        for listener in listeners:
            listener(outcome)

    def fail(self, saga_id: str, error: BaseException) -> None:
        """The saga cannot end for now (quarantined): its waiters learn why at once."""
        with self._lock:
            waiting = self._waiters.pop(saga_id, [])
        for future in waiting:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(error)

    def fail_all(self, error: BaseException) -> None:
        """The runtime died: every waiter learns it instead of waiting forever."""
        with self._lock:
            self._failure = error
            waiting = [f for futures in self._waiters.values() for f in futures]
            self._waiters.clear()
        for future in waiting:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(error)

    @property
    def failure(self) -> BaseException | None:
        """Why the runtime stopped (closed or crashed), if it did."""
        return self._failure

    def __len__(self) -> int:
        """Callers waiting now (one per waiting call)."""
        with self._lock:
            return sum(len(futures) for futures in self._waiters.values())

    def listen(self, listener: Callable[[Outcome], Any]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unlisten() -> None:
            with self._lock:
                self._listeners.remove(listener)

        return unlisten
