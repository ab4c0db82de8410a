"""Where finished sagas' outcomes meet the callers waiting for them (thread-safe).

One :class:`Completion` per saga someone waits for: far lighter than a ``Future`` (no
``Condition``; a thread that blocks parks on a lock of its own, made only then). The board
keeps a saga's completion while someone waits for it, and, for a saga this runtime started
(:meth:`OutcomeBoard.track`), until it ends: that caller needs no journal read to learn the
outcome. Any other caller first registers (:meth:`OutcomeBoard.wait`), then checks the journal
(the saga may have ended before), and releases its registration when it stops waiting: a saga
that ends after the registration completes it, one that ended before it is in the journal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, NamedTuple

import msgspec

from ..messages import Outcome, SagaStatus
from ..sagas.machine import SagaState
from ..sagas.native import NativeState
from ..sagas.outcomes import ResultTypes, outcome_of

__all__ = ["Completion", "OutcomeBoard", "Submitted", "fail_waiting"]

logger = logging.getLogger("sagactor")


class Completion:
    """One saga's end: its outcome, or why it will not come (the runtime closed or crashed,
    the saga was quarantined). Settled once; waited for from any thread.

    Light because a runtime holds one per saga in flight: a slot for the callbacks holds the
    one callback most sagas get as itself (a list only from the second on), and a callback on
    the outcome alone (:meth:`add_outcome_callback`) needs no wrapper of its own, and its end
    (the outcome or the error) is one slot."""

    __slots__ = ("_callbacks", "_end", "_guard", "_on_outcome", "_parked", "holders")

    def __init__(self, guard: threading.Lock) -> None:
        self._guard = guard  # the board's lock: one per runtime, held only for a moment
        self._parked: list[Any] | None = None  # locks of blocked threads
        self._callbacks: Any = None  # None, one callable, or a list of them
        self._on_outcome: Any = None  # the same, called with the outcome if one comes
        self._end: Outcome | BaseException | None = None  # the outcome, or why none comes
        self.holders = -1  # callers registered through the board; -1: tracked until the end

    @property
    def finished(self) -> bool:
        return self._end is not None

    @property
    def outcome(self) -> Outcome | None:
        return self._end if isinstance(self._end, Outcome) else None

    @property
    def error(self) -> BaseException | None:
        return self._end if isinstance(self._end, BaseException) else None

    def settle(self, outcome: Outcome | None, error: BaseException | None) -> None:
        """Set the outcome (or the error) once, wake the blocked threads, run the callbacks."""
        end = error if error is not None else outcome
        assert end is not None  # every caller gives one
        with self._guard:
            if self._end is not None:
                return
            self._end = end
            parked, callbacks, on_outcome = self._parked, self._callbacks, self._on_outcome
            self._parked = self._callbacks = self._on_outcome = None
        for lock in parked or ():
            lock.release()
        for callback in _each(callbacks):
            _run(callback, self)
        if error is None and outcome is not None:
            for callback in _each(on_outcome):
                _run(callback, outcome)

    def done(self) -> bool:
        return self.finished

    def wait(self, timeout: float | None = None) -> bool:
        """Block until settled (True) or ``timeout`` seconds passed (False)."""
        if self.finished:
            return True
        lock = threading.Lock()
        lock.acquire()
        with self._guard:
            if self.finished:
                return True
            if self._parked is None:
                self._parked = []
            self._parked.append(lock)
        if lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return True
        with self._guard:
            if self._parked is not None and lock in self._parked:
                self._parked.remove(lock)
            return self.finished

    def result(self, timeout: float | None = None) -> Outcome:
        """The outcome; raises the error instead, or ``TimeoutError``."""
        if not self.wait(timeout):
            raise TimeoutError
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    def exception(self) -> BaseException | None:
        return self.error

    def add_done_callback(self, callback: Callable[[Completion], object]) -> None:
        """Call ``callback(self)`` once settled (at once, on this thread, if it is)."""
        with self._guard:
            if not self.finished:
                self._callbacks = _joined(self._callbacks, callback)
                return
        callback(self)

    def add_outcome_callback(self, callback: Callable[[Outcome], object]) -> None:
        """Call ``callback(outcome)`` once settled with an outcome (at once, on this thread,
        if it is); never if it settles with an error."""
        with self._guard:
            if not self.finished:
                self._on_outcome = _joined(self._on_outcome, callback)
                return
        if self.error is None and self.outcome is not None:
            callback(self.outcome)


def _joined(held: Any, callback: Callable[..., object]) -> Any:
    """``held`` (None, one callable or a list of them) with ``callback`` after it."""
    if held is None:
        return callback
    if isinstance(held, list):
        held.append(callback)
        return held
    return [held, callback]


def _each(held: Any) -> list[Callable[..., object]]:
    if held is None:
        return []
    return held if isinstance(held, list) else [held]


def _run(callback: Callable[..., object], argument: object) -> None:
    try:
        callback(argument)
    except Exception:
        logger.exception("a saga's done callback failed")


class OutcomeBoard:
    """Completions per saga; ``result_types`` types the outcomes' results (an immutable
    snapshot, replaced as participants register)."""

    def __init__(
        self,
        result_types: ResultTypes | None = None,
        positions: Callable[[str], tuple[int, int] | None] | None = None,
    ) -> None:
        self._positions = positions  # where a queued saga stands (see admission)
        self._lock = threading.Lock()
        self._sagas: dict[str, Completion] = {}
        self._waiting = 0
        self._failure: BaseException | None = None
        self.result_types: ResultTypes = result_types if result_types is not None else {}
        self.finished = 0

    def outcome(self, state: SagaState | NativeState) -> Outcome:
        outcome = outcome_of(state, self.result_types)
        if state.status is SagaStatus.QUEUED and self._positions is not None:
            where = self._positions(state.saga_id)
            priority = f"priority {state.queue[0]}" if isinstance(state, SagaState) else ""
            place = f"position {where[0]} of {where[1]}, " if where is not None else ""
            reason = f"waiting for a slot of {state.definition.name!r} ({place}{priority})"
            outcome = msgspec.structs.replace(outcome, reason=reason)
        return outcome

    def track(self, saga_id: str) -> Completion:
        """The completion of a saga this runtime is about to start: kept until it ends, so its
        starter learns the outcome without reading the journal. Call before the start is sent."""
        with self._lock:
            completion = self._sagas.get(saga_id)
            if completion is None:
                completion = self._sagas[saga_id] = Completion(self._lock)
            completion.holders = -1
            failure = self._failure
        if failure is not None:
            completion.settle(None, failure)
        return completion

    def wait(self, saga_id: str) -> Completion:
        """Register to wait for the saga's end. Check the journal next (the saga may have
        ended already), and pass the completion to :meth:`release` once done with it."""
        with self._lock:
            self._waiting += 1
            failure = self._failure
            completion = self._sagas.get(saga_id)
            if failure is None:
                if completion is None:
                    completion = self._sagas[saga_id] = Completion(self._lock)
                    completion.holders = 0
                if completion.holders >= 0:
                    completion.holders += 1
        if failure is not None:  # asked after the runtime died: say so at once
            completion = Completion(self._lock)
            completion.settle(None, failure)
        assert completion is not None
        return completion

    def release(self, saga_id: str, completion: Completion) -> None:
        """The caller no longer waits (done, timed out or cancelled)."""
        with self._lock:
            self._waiting -= 1
            if completion.holders > 0:
                completion.holders -= 1
                if not completion.holders and self._sagas.get(saga_id) is completion:
                    del self._sagas[saga_id]

    def finish(self, outcome: Outcome) -> None:
        with self._lock:
            completion = self._sagas.pop(outcome.saga_id, None)
            self.finished += 1
        if completion is not None:
            completion.settle(outcome, None)

    def fail(self, saga_id: str, error: BaseException) -> None:
        """The saga cannot end for now (quarantined, or its start failed): its waiters learn
        why at once."""
        with self._lock:
            completion = self._sagas.pop(saga_id, None)
        if completion is not None:
            completion.settle(None, error)

    def start_failed(self, saga_id: str, accepted: Future[str]) -> None:
        """A tracked saga's start is settled (a future's callback): if it failed, nothing of
        the saga was journaled, so it never ends: its completion gets the error."""
        error = accepted.exception()
        if error is not None:
            self.fail(saga_id, error)

    def fail_all(self, error: BaseException) -> None:
        """The runtime died: every waiter learns it instead of waiting forever."""
        with self._lock:
            self._failure = error
            waiting = list(self._sagas.values())
            self._sagas.clear()
        for completion in waiting:
            completion.settle(None, error)

    @property
    def failure(self) -> BaseException | None:
        """Why the runtime stopped (closed or crashed), if it did."""
        return self._failure

    def __len__(self) -> int:
        """Callers waiting now (one per waiting call)."""
        with self._lock:
            return self._waiting


class Submitted(NamedTuple):
    """A start handed to a driver: its id, the future of its journaling, and (for a saga
    with a fresh id, which only this runtime can drive) the completion of its end."""

    saga_id: str
    accepted: Future[str]
    completion: Completion | None


def fail_waiting(futures: Iterable[Future[Any]], error: BaseException) -> None:
    """Fail the futures not yet answered (their answer would never come: a crash, a close)."""
    for future in futures:
        if not future.done():
            future.set_exception(error)
