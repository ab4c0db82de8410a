"""Where finished sagas' outcomes meet the callers waiting for them (thread-safe)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import msgspec

from ..messages import Outcome
from .machine import SagaState
from .native import NativeState

__all__ = ["OutcomeBoard", "outcome_of"]


def outcome_of(state: SagaState | NativeState) -> Outcome:
    if isinstance(state, NativeState):
        return state.outcome()
    results = {
        step: msgspec.msgpack.decode(value) if isinstance(value, msgspec.Raw) else value
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
    """One future per awaited saga; outcomes of sagas finished by this runtime are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[str, Future[Outcome]] = {}
        self._listeners: list[Callable[[Outcome], Any]] = []
        self._failure: BaseException | None = None
        self.finished = 0

    def future(self, saga_id: str) -> Future[Outcome]:
        with self._lock:
            future = self._futures.get(saga_id)
            if future is None:
                future = self._futures[saga_id] = Future()
                if self._failure is not None:  # asked after the runtime died: say so at once
                    future.set_exception(self._failure)
            return future

    def finish(self, outcome: Outcome) -> None:
        with self._lock:
            future = self._futures.get(outcome.saga_id)
            if future is None or future.done():  # a resumed saga ends a second time
                future = self._futures[outcome.saga_id] = Future()
            self.finished += 1
            listeners = list(self._listeners)
        with contextlib.suppress(InvalidStateError):  # the runtime died meanwhile
            future.set_result(outcome)
        for listener in listeners:
            listener(outcome)

    def forget(self, saga_id: str) -> None:
        """The saga runs again (resumed): its old outcome no longer stands."""
        with self._lock:
            future = self._futures.get(saga_id)
            if future is not None and future.done():
                del self._futures[saga_id]

    def fail_all(self, error: BaseException) -> None:
        """The runtime died: every waiter learns it instead of waiting forever."""
        with self._lock:
            self._failure = error
            waiting = [f for f in self._futures.values() if not f.done()]
        for future in waiting:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(error)

    def listen(self, listener: Callable[[Outcome], Any]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unlisten() -> None:
            with self._lock:
                self._listeners.remove(listener)

        return unlisten
