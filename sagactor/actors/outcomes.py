"""Where finished sagas' outcomes meet the callers waiting for them (thread-safe).

The board holds a waiter only while someone waits: an outcome that nobody awaits is not kept
(a caller who asks after the end reads it from the journal). So a waiting caller first
registers, then checks the journal, and removes its waiter when it stops waiting: a saga that
ends after the registration completes the waiter, one that ended before it is in the journal.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, InvalidStateError

from ..messages import Outcome
from ..sagas.machine import SagaState
from ..sagas.native import NativeState
from ..sagas.outcomes import ResultTypes, outcome_of

__all__ = ["OutcomeBoard"]


class OutcomeBoard:
    """Waiters per saga, while they wait; ``result_types`` types the outcomes' results."""

    def __init__(self, result_types: ResultTypes | None = None) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Future[Outcome]]] = {}
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
        for future in waiting:
            with contextlib.suppress(InvalidStateError):  # the runtime died meanwhile
                future.set_result(outcome)

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
