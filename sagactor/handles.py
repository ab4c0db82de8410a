"""Handles a caller keeps: a run of one saga, the entries of a saga's timeline, and what a
runtime holds in memory (its footprint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import SagaTimeout
from .messages import Outcome

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Footprint", "HistoryEntry", "SagaRun"]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event of a saga's correlated timeline: who recorded what, when, in which order.

    ``event`` is the journaled event with its payloads decoded (a saga's ``input``, a step's
    ``result``, a published event's ``data``: typed where the runtime knows the type, plain
    data otherwise), never msgpack bytes, so ``msgspec.to_builtins(entry.event)`` works.
    """

    position: int
    ts: float
    source: str
    type: str
    event: Any
    cause: str

    def to_builtins(self) -> dict[str, Any]:
        """The entry as JSON-ready builtins (the event as ``msgspec.to_builtins`` gives it)."""
        return {
            "position": self.position,
            "ts": self.ts,
            "source": self.source,
            "type": self.type,
            "event": msgspec.to_builtins(self.event),
            "cause": self.cause,
        }


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a runtime holds for its sagas (``Runtime.footprint()``): bounded by live work, not
    by how many sagas ever ran."""

    sagas: int
    """Sagas the coordinator and the dispatcher drive now (in flight)."""
    waiters: int
    """Calls waiting for a saga's outcome now."""
    inbox: dict[str, int]
    """Inbox records each participant keeps (those of sagas not yet ended)."""
    snapshot_bytes: dict[str, int]
    """Size of each participant's latest snapshot."""


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
        board = self._runtime._outcomes
        future = board.wait(self.id)  # first wait, then look: an end in between is not missed
        try:
            if not future.done():
                ended = self._runtime._ended_in_journal(self.id)  # it may have ended already
                if ended is not None:
                    return ended
            return future.result(timeout)
        except TimeoutError:
            raise SagaTimeout(self.id, timeout) from None
        finally:
            board.release(self.id, future)

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
