"""The async face of a runtime (asyncio or trio, through anyio: see :mod:`sagactor.aio`): the
``a``-methods of :class:`~sagactor.Runtime`, none of which blocks the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Self, cast

from . import aio, signals
from .cluster.view import require_active
from .engine import Engine
from .handles import SagaRun
from .history import HistoryEntry
from .messages import Outcome
from .names import Mode
from .sagas.definition import Choreography, Saga

__all__ = ["AsyncFace"]


class AsyncFace:
    """The async part of :class:`~sagactor.Runtime`."""

    _engine: Engine

    async def astart(
        self,
        saga: Saga | Choreography | str,
        input: Any,
        *,
        saga_id: str | None = None,
        mode: Mode = "orchestration",
        priority: int = 0,
    ) -> SagaRun:
        """:meth:`start` for async callers: awaits the journaling without blocking the loop."""
        definition = self._engine.catalog.definition(saga)
        accepted = await aio.start_saga(
            self._engine, definition, input, saga_id=saga_id, mode=mode, priority=priority
        )
        return SagaRun(cast(Any, self), accepted)

    async def asignal(
        self, saga_id: str, name: str, payload: Any = None, *, signal_id: str | None = None
    ) -> bool:
        """:meth:`signal` for async callers: awaits the journaling without blocking the loop."""
        require_active(self._engine, "signal")
        return await signals.asignal(self._engine, saga_id, name, payload, signal_id)

    async def astatus(self, saga_id: str) -> Outcome:
        """:meth:`status` for async callers: the journal is read in a worker thread."""
        return await aio.status(self._engine, saga_id)

    async def ahistory(self, saga_id: str) -> list[HistoryEntry]:
        """:meth:`history` for async callers: the journal is read in a worker thread."""
        return await aio.history(self._engine, saga_id)

    def watch(self, saga_id: str) -> AsyncIterator[HistoryEntry]:
        """``async for entry in rt.watch(id)``: the saga's :meth:`history` as it happens.

        Starts with the entries already journaled, then yields each new one once, in journal
        order, and ends after the saga's terminal event.
        """
        return aio.watch(self._engine, saga_id)

    async def aclose(self) -> None:
        """:meth:`close` for async callers (it runs in a worker thread)."""
        await aio.close_engine(self._engine)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
