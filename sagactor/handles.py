"""The handle a caller keeps on one saga: its id, and its outcome once it ends, blocking or
awaited, or by callback. All wait on the engine through its public methods; so do the starts
that make handles (``Runtime.start_many``, ``Runtime.start_nowait``)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from . import aio
from .actors.outcomes import Completion
from .engine import Engine
from .errors import SagaTimeout
from .messages import Outcome, SagaStatus
from .names import Mode
from .sagas.definition import Choreography, Saga

__all__ = ["SagaRun", "StartOne", "start_nowait", "start_runs"]


class _HasEngine(Protocol):
    """A runtime: what a :class:`SagaRun` is made from."""

    @property
    def engine(self) -> Engine: ...


class SagaRun:
    """A handle on one saga: its id, and its outcome once it ends."""

    __slots__ = ("_completion", "_engine", "id")

    def __init__(
        self, runtime: _HasEngine, saga_id: str, completion: Completion | None = None
    ) -> None:
        self._engine = runtime.engine
        self.id = saga_id
        # A saga this runtime started with a fresh id: its end reaches this handle directly.
        self._completion = completion

    def _tracked(self) -> Completion | None:
        """The completion to trust, if any: not a "stuck" one (a resume may undo it)."""
        completion = self._completion
        if completion is not None and completion.finished and completion.error is None:
            assert completion.outcome is not None
            if completion.outcome.status is SagaStatus.STUCK:
                self._completion = completion = None
        return completion

    def result(self, timeout: float | None = None) -> Outcome:
        """Block until the saga ends; raises :class:`SagaTimeout` after ``timeout`` seconds.

        Raises :class:`UnknownSaga` for an id no saga has, and :class:`SagaQuarantined` at once
        (not after the timeout) for a saga that cannot be loaded: it would not end until someone
        fixes the cause and calls :meth:`Runtime.retry_quarantined`.
        """
        tracked = self._tracked()
        if tracked is not None:
            try:
                outcome = tracked.result(timeout)
            except TimeoutError:
                raise SagaTimeout(self.id, timeout) from None
            if outcome.status is not SagaStatus.STUCK:
                return outcome
            self._completion = None  # stuck: from now on, as any handle (see _tracked)
        engine = self._engine
        # First wait, then look: an end in between is not missed.
        waiter = engine.outcomes.wait(self.id)
        try:
            if not waiter.done():
                ended = engine.ended_in_journal(self.id)  # it may have ended already
                if ended is not None:
                    return ended
            return waiter.result(timeout)
        except TimeoutError:
            raise SagaTimeout(self.id, timeout) from None
        finally:
            engine.outcomes.release(self.id, waiter)

    def add_done_callback(self, fn: Callable[[Outcome], object]) -> None:
        """Call ``fn(outcome)`` once the saga ends (completed, compensated or stuck): on a
        runtime thread, or at once on this one if it has ended already.

        Keep ``fn`` quick (it runs where sagas are driven) and do not block in it (no
        ``result()`` of another saga; ``rt.close()`` is fine, it then finishes on a thread of
        its own). It is not
        called if the runtime closes or crashes first, or if the saga is quarantined. It may
        read the journal once (not for a saga this runtime started with a fresh id).
        """

        tracked = self._tracked()
        if tracked is not None:
            tracked.add_outcome_callback(fn)  # ``fn`` itself: no wrapper per saga
            return
        engine = self._engine
        waiter = engine.outcomes.wait(self.id)  # first wait, then look, as in result()
        try:
            ended = None if waiter.done() else engine.ended_in_journal(self.id)
        except BaseException:
            engine.outcomes.release(self.id, waiter)
            raise
        if ended is not None:
            engine.outcomes.release(self.id, waiter)
            fn(ended)
            return

        def released(completion: Completion) -> None:
            engine.outcomes.release(self.id, completion)
            if completion.error is None and completion.outcome is not None:
                fn(completion.outcome)

        waiter.add_done_callback(released)

    @property
    def status(self) -> Outcome:
        return self._engine.status(self.id)

    def __await__(self) -> Any:
        """``await run``: the outcome, from asyncio or trio, without blocking the loop."""
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> Outcome:
        """``await run.wait(timeout)``: :meth:`result` for async callers (never blocks the loop)."""
        tracked = self._tracked()
        if tracked is not None:  # started here: no journal read, as in result()
            outcome = await aio.wait_completion(tracked, self.id, timeout)
            if outcome.status is not SagaStatus.STUCK:
                return outcome
            self._completion = None
        return await aio.wait_outcome(self._engine, self.id, timeout)

    def __repr__(self) -> str:
        return f"SagaRun({self.id!r})"


class StartOne:
    """``start``, as ``start_many`` of one input: shared by the faces that start sagas
    (:class:`~sagactor.Runtime` and :class:`~sagactor.Partitioned`)."""

    start_many: Callable[..., list[SagaRun]]  # the face's own

    def start(
        self,
        saga: Saga | Choreography | str,
        input: Any,
        *,
        saga_id: str | None = None,
        mode: Mode = "orchestration",
        priority: int = 0,
    ) -> SagaRun:
        """Start ``saga`` (a definition, or the name of a registered one) on ``input``; returns
        once the start is durably journaled (on a standby: forwarded to the runtime holding
        the journal; ``priority``: see ``Saga(max_in_flight=)``).

        The input is first converted to the saga's ``input_type`` (a dict or a dataclass becomes
        that Struct); one that does not fit raises :class:`PayloadError` naming the field, and
        nothing is journaled. Handlers get the input as the journal gives it back, so they see
        the same value live and after a restart.

        A ``saga_id`` is an idempotency key: the same id with the same input returns the
        existing run; with another input, or another saga or version, it raises
        :class:`SagaIdConflict`.
        """
        ids = None if saga_id is None else [saga_id]
        return self.start_many(saga, [input], saga_ids=ids, mode=mode, priority=priority)[0]


def start_runs(
    runtime: _HasEngine,
    saga: Saga | Choreography | str,
    inputs: Sequence[Any],
    saga_ids: Sequence[str] | None,
    mode: Mode,
    priority: int = 0,
) -> list[SagaRun]:
    """Start sagas and wait once for all their starts to be journaled (``start_many``)."""
    engine = runtime.engine
    submitted = engine.submit(saga, inputs, saga_ids, mode, priority)
    accepted = [start.accepted for start in submitted]
    try:
        if len(accepted) > 1:
            concurrent.futures.wait(accepted)  # one wait; result() below returns at once
        return [SagaRun(runtime, start.accepted.result(), start.completion) for start in submitted]
    finally:
        engine.settle(accepted)


def start_nowait(
    runtime: _HasEngine, saga: Saga | Choreography | str, input: Any, mode: Mode
) -> SagaRun:
    """Start a saga with a fresh id without waiting for its journaling (``start_nowait``)."""
    engine = runtime.engine
    (start,) = engine.submit(saga, [input], None, mode)
    engine.settle([start.accepted])  # nobody waits for it: its completion says how it went
    return SagaRun(runtime, start.saga_id, start.completion)
