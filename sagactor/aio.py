"""The async face of the runtime, for asyncio and trio applications alike (through anyio).

Nothing here blocks the caller's event loop, and the runtime's threads never wait for it:

* a runtime thread wakes an async waiter by scheduling ``Event.set`` on the waiter's loop with
  the loop's own thread-safe call (asyncio's ``call_soon_threadsafe``, trio's
  ``run_sync_soon``, reached through anyio's event loop token);
* work that may block (closing the runtime, reading the journal) runs in a worker thread
  (``anyio.to_thread``).

The :class:`~sagactor.runtime.Runtime` and :class:`~sagactor.runtime.SagaRun` methods
(``astart``, ``watch``, ``aclose``, ``async with``, ``await run``, ``run.wait``) delegate here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from .errors import SagaTimeout, UnknownSaga
from .messages import Outcome
from .persistence.journal import Record
from .persistence.recovery import saga_stream

if TYPE_CHECKING:
    from .runtime import HistoryEntry, Mode, Runtime, SagaRun
    from .sagas.definition import Saga
    from .sagas.native import Choreography

__all__ = [
    "call_soon_in_loop",
    "close_runtime",
    "start_saga",
    "wait_future",
    "wait_outcome",
    "watch",
]

T = TypeVar("T")

_PARTICIPANTS = "participant/"


def call_soon_in_loop(token: anyio.lowlevel.EventLoopToken) -> Callable[[Callable[[], Any]], None]:
    """A function that schedules a callback on the loop of ``token``, from any thread.

    It never blocks and never raises: once that loop has ended, the callback is dropped.
    """

    def schedule(callback: Callable[[], Any]) -> None:
        with contextlib.suppress(RuntimeError):  # anyio.RunFinishedError: the loop is gone
            token.backend_class.run_sync_soon(callback, (), token.native_token)

    return schedule


async def wait_future(future: Future[T]) -> T:
    """Await a thread-side future without blocking the event loop."""
    if not future.done():
        event = anyio.Event()
        schedule = call_soon_in_loop(anyio.lowlevel.current_token())
        future.add_done_callback(lambda _: schedule(event.set))
        await event.wait()
    return future.result()


async def wait_outcome(run: SagaRun, timeout: float | None = None) -> Outcome:
    """The saga's outcome once it ends; :class:`SagaTimeout` after ``timeout`` seconds."""
    runtime = run._runtime
    with anyio.move_on_after(timeout):
        future = runtime._outcomes.future(run.id)
        if not future.done():
            # It may have ended before this runtime started (then no one here will finish it):
            # the blocking check of ``result`` reads the journal, so it runs in a worker thread.
            with contextlib.suppress(SagaTimeout):
                return await anyio.to_thread.run_sync(run.result, 0)
            runtime._check_open()  # a closed runtime finishes nothing more: do not wait forever
        return await wait_future(future)
    raise SagaTimeout(run.id, timeout)


async def start_saga(
    runtime: Runtime,
    saga: Saga | Choreography,
    input: Any,
    *,
    saga_id: str | None = None,
    mode: Mode = "orchestration",
) -> SagaRun:
    """``runtime.start`` without blocking: submit, then await the journal's acceptance.

    If the caller is cancelled while it waits, the saga may still start (the request is out):
    pass a ``saga_id`` to find it again, starting the same id twice is harmless.
    """
    from .runtime import SagaRun

    futures = runtime._submit(saga, [input], None if saga_id is None else [saga_id], mode)
    try:
        accepted = await wait_future(futures[0])
    finally:
        runtime._settle(futures)
    return SagaRun(runtime, accepted)


async def close_runtime(runtime: Runtime) -> None:
    """``runtime.close()`` in a worker thread: it joins actor threads, the loop must not wait."""
    await anyio.to_thread.run_sync(runtime.close)


async def watch(runtime: Runtime, saga_id: str) -> AsyncIterator[HistoryEntry]:
    """The saga's history entries as they are journaled, in journal order, each once.

    Starts with those already journaled and ends after the saga's terminal event (the latest
    one, if an operator resumed it). Woken by the runtime's commit signals, it reads only the
    journal's tail since its last read, in a worker thread. Raises :class:`UnknownSaga`, or
    the runtime's closing or crash if that comes first.
    """
    schedule = call_soon_in_loop(anyio.lowlevel.current_token())
    wakeup = [anyio.Event()]

    def poke() -> None:  # any thread
        schedule(lambda: wakeup[0].set())

    outcome = runtime._outcomes.future(saga_id)  # fails when the runtime closes or dies
    runtime._check_open()  # (after taking the future, so a closing now fails it)
    unsubscribe = runtime._env.commits.subscribe(saga_id, poke)
    outcome.add_done_callback(lambda _: poke())
    try:
        cursor: int | None = None
        while True:
            _raise_if_gone(outcome)
            wakeup[0] = anyio.Event()  # before reading: a commit during the read wakes us
            try:
                entries, cursor, ended = await anyio.to_thread.run_sync(
                    _read_tail, runtime, saga_id, cursor
                )
            except Exception:
                _raise_if_gone(outcome)  # the journal closed under the read: say why
                raise
            for entry in entries:
                yield entry
            if ended:
                return
            await wakeup[0].wait()
    finally:
        unsubscribe()


def _raise_if_gone(outcome: Future[Outcome]) -> None:
    if outcome.done() and outcome.exception() is not None:
        outcome.result()  # raises RuntimeClosed or RuntimeCrashed


def _read_tail(
    runtime: Runtime, saga_id: str, cursor: int | None
) -> tuple[list[HistoryEntry], int, bool]:
    """The saga's records after journal position ``cursor`` (``None``: from the start).

    Returns its entries, the new cursor, and whether the latest saga event is terminal.

    Journal positions are assigned at commit, so a record never appears behind one already
    seen. The first read takes the saga's own stream first and keeps only participant records
    up to its last position (those are all committed already); later reads take the global
    tail after the cursor, so nothing is skipped or read twice.
    """
    journal = runtime.journal
    stream = saga_stream(saga_id)
    cause = f"{saga_id}/"
    if cursor is None:
        own = journal.read(stream)
        if not own:
            raise UnknownSaga(saga_id)
        cursor = own[-1].position
        records = [
            *own,
            *(
                r
                for r in journal.read_prefix(_PARTICIPANTS)
                if r.cause.startswith(cause) and r.position <= cursor
            ),
        ]
        records.sort(key=lambda r: r.position)
    else:
        tail = journal.read_all(after=cursor)
        if not tail:
            return [], cursor, False
        cursor = tail[-1].position
        records = [
            r
            for r in tail
            if r.stream == stream
            or (r.stream.startswith(_PARTICIPANTS) and r.cause.startswith(cause))
        ]
    saga_records = [r for r in records if r.stream == stream]
    ended = bool(saga_records) and saga_records[-1].final
    return _entries(runtime, records, saga_records), cursor, ended


def _entries(
    runtime: Runtime, records: Sequence[Record], saga_records: list[Record]
) -> list[HistoryEntry]:
    """Typed entries, as ``Runtime.history`` makes them."""
    return runtime._entries(records, saga_records)
