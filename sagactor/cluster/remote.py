"""Starts across runtimes: a standby's handle on a forwarded saga (:class:`RemoteRun`) and
the active runtime's consumer of forwarded starts (:class:`StartsConsumer`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

import anyio.to_thread
import msgspec

from ..engine import Engine
from ..errors import (
    OperationRefused,
    RuntimeClosed,
    RuntimeCrashed,
    SagactorError,
    SagaTimeout,
    UnknownSaga,
)
from ..handles import SagaRun
from ..messages import Outcome
from ..sagas.definition import Choreography

if TYPE_CHECKING:
    from ..persistence.postgres.starts import Request, StartsQueue
    from ..retention import Retention

__all__ = ["RemoteRun", "RuntimeLike", "StartsConsumer"]

log = logging.getLogger("sagactor")


class RuntimeLike(Protocol):
    """What :class:`Membership` and :class:`RemoteRun` need of a runtime."""

    _engine: Engine

    @property
    def engine(self) -> Engine: ...

    def status(self, saga_id: str) -> Outcome: ...

    def keep_pruning(self, retention: Retention) -> None: ...


class RemoteRun(SagaRun):
    """A handle on a saga started through a standby: its outcome is read from the journal
    (polled: from a few milliseconds apart up to a tenth of a second), wherever it runs."""

    __slots__ = ("_queue", "_request", "_runtime")

    def __init__(
        self, runtime: RuntimeLike, saga_id: str, queue: StartsQueue, request: int | None = None
    ) -> None:
        super().__init__(runtime, saga_id)
        self._runtime = runtime
        self._queue = queue
        self._request = request  # the row of its start's request, until that is taken

    def result(self, timeout: float | None = None) -> Outcome:
        """Block until the saga ends (see :meth:`SagaRun.result`); raises
        :class:`OperationRefused` if the active runtime refused to start it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            outcome = self._look()
            if outcome is not None and outcome.status.terminal:
                return outcome
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise SagaTimeout(self.id, timeout)
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 0.1)

    def _look(self) -> Outcome | None:
        if self._request is not None:  # first the fate of its request
            fate = self._queue.fate(self._request)
            if fate:
                raise OperationRefused("start", f"saga {self.id!r}: {fate}")
            if fate == "":
                return None  # waits for the active runtime
            self._request = None
        try:
            return self._runtime.status(self.id)
        except UnknownSaga:
            if self._queue.refusal(self.id) is None:
                raise
            return None

    def add_done_callback(self, fn: Callable[[Outcome], object]) -> None:
        """Call ``fn(outcome)`` once the saga ends, from a thread of its own that polls."""
        threading.Thread(
            target=lambda: fn(self.result()), name=f"sagactor-remote-run:{self.id}", daemon=True
        ).start()

    @property
    def status(self) -> Outcome:
        return self._runtime.status(self.id)

    def __await__(self) -> Any:
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> Outcome:
        return await anyio.to_thread.run_sync(self.result, timeout)


class StartsConsumer:
    """On the active runtime: starts the sagas standbys asked for (see :mod:`.starts`)."""

    def __init__(self, engine: Engine, queue: StartsQueue, poll: float = 1.0) -> None:
        self._engine = engine
        self._queue = queue
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sagactor-starts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._queue.wake()  # else a close waits out the listener's poll (0.2 s)
            self._thread.join()

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._queue.listen()
                self._take(conn)
                if self._stop.is_set():
                    break  # stopped while listening began: its wake may have come too soon
                self._queue.wait(conn, min(self._poll, 0.2))
            except (RuntimeClosed, RuntimeCrashed):
                break
            except Exception:
                log.exception("starting the sagas standbys asked for failed; trying again")
                conn = None
                self._stop.wait(self._poll)
        if conn is not None:
            conn.close()

    def _take(self, conn: Any) -> None:
        requests = self._queue.pending(conn)
        waiting: list[tuple[Request, Future[str]]] = []
        for request in requests:
            try:
                waiting.append((request, self._submit(request)))
            except (RuntimeClosed, RuntimeCrashed):
                raise
            except (SagactorError, msgspec.MsgspecError) as error:
                self._queue.refuse(conn, request.row, f"{type(error).__name__}: {error}")
        started = []
        for request, future in waiting:
            try:
                future.result()
                started.append(request.row)
            except (RuntimeClosed, RuntimeCrashed):
                raise
            except SagactorError as error:
                self._queue.refuse(conn, request.row, f"{type(error).__name__}: {error}")
            finally:
                self._engine.settle([future])
        if started:
            self._queue.done(conn, started)

    def _submit(self, request: Request) -> Future[str]:
        definition = self._engine.catalog.definitions.exact(request.saga, request.version)
        if definition is None:
            raise OperationRefused(
                "start", f"this runtime has no saga {request.saga!r} version {request.version}"
            )
        wanted = definition.start if isinstance(definition, Choreography) else definition.input_type
        value = msgspec.msgpack.decode(request.input, type=wanted if wanted is not None else Any)
        mode: Any = request.mode
        return self._engine.submit(definition, [value], [request.saga_id], mode)[0].accepted
