"""Handles a caller keeps: a run of one saga, and the entries of a saga's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SagaTimeout
from .messages import Outcome

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["HistoryEntry", "SagaRun"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event of a saga's correlated timeline: who recorded what, when, in which order."""

    position: int
    ts: float
    source: str
    type: str
    event: Any
    cause: str


class SagaRun:
    """A handle on one saga: its id, and its outcome once it ends."""

    __slots__ = ("_runtime", "id")

    def __init__(self, runtime: Runtime, saga_id: str) -> None:
        self._runtime = runtime
        self.id = saga_id

    def result(self, timeout: float | None = None) -> Outcome:
        """Block until the saga ends; raises :class:`SagaTimeout` after ``timeout`` seconds.

        Raises :class:`UnknownSaga` for an id no saga has, and :class:`SagaQuarantined` at once
        (not after the timeout) for a saga that cannot be loaded: it would not end until someone
        fixes the cause and calls :meth:`Runtime.retry_quarantined`.
        """
        future = self._runtime._outcomes.future(self.id)
        if not future.done() and self.id not in self._runtime._resumed:
            # It may have ended before this runtime started (then no one here will finish it).
            # Not a resumed saga: its journal still says "stuck" until the resume commits.
            ended = self._runtime._ended_in_journal(self.id)
            if ended is not None:
                return ended
        try:
            return future.result(timeout)
        except TimeoutError:
            raise SagaTimeout(self.id, timeout) from None

    @property
    def status(self) -> Outcome:
        return self._runtime.status(self.id)

    def __await__(self) -> Any:
        """``await run``: the outcome, from asyncio or trio, without blocking the loop."""
        from .aio import wait_outcome  # anyio is only needed by async callers

        return wait_outcome(self).__await__()

    async def wait(self, timeout: float | None = None) -> Outcome:
        """``await run.wait(timeout)``: :meth:`result` for async callers (never blocks the loop)."""
        from .aio import wait_outcome

        return await wait_outcome(self, timeout)

    def __repr__(self) -> str:
        return f"SagaRun({self.id!r})"
