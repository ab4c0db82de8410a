"""The handle a caller keeps on one saga: its id, and its outcome once it ends, blocking or
awaited. Both ways wait on the engine through its public methods."""

from __future__ import annotations

from typing import Any, Protocol

from . import aio
from .engine import Engine
from .errors import SagaTimeout
from .messages import Outcome

__all__ = ["SagaRun"]


class _HasEngine(Protocol):
    """A runtime: what a :class:`SagaRun` is made from."""

    @property
    def engine(self) -> Engine: ...


class SagaRun:
    """A handle on one saga: its id, and its outcome once it ends."""

    __slots__ = ("_engine", "id")

    def __init__(self, runtime: _HasEngine, saga_id: str) -> None:
        self._engine = runtime.engine
        self.id = saga_id

    def result(self, timeout: float | None = None) -> Outcome:
        """Block until the saga ends; raises :class:`SagaTimeout` after ``timeout`` seconds.

        Raises :class:`UnknownSaga` for an id no saga has, and :class:`SagaQuarantined` at once
        (not after the timeout) for a saga that cannot be loaded: it would not end until someone
        fixes the cause and calls :meth:`Runtime.retry_quarantined`.
        """
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

    @property
    def status(self) -> Outcome:
        return self._engine.status(self.id)

    def __await__(self) -> Any:
        """``await run``: the outcome, from asyncio or trio, without blocking the loop."""
        return aio.wait_outcome(self._engine, self.id).__await__()

    async def wait(self, timeout: float | None = None) -> Outcome:
        """``await run.wait(timeout)``: :meth:`result` for async callers (never blocks the loop)."""
        return await aio.wait_outcome(self._engine, self.id, timeout)

    def __repr__(self) -> str:
        return f"SagaRun({self.id!r})"
