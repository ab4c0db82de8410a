"""The async face of the runtime, for asyncio and trio applications alike (through anyio).

Nothing here blocks the caller's event loop, and the runtime's threads never wait for it:

* a runtime thread wakes an async waiter by scheduling ``Event.set`` on the waiter's loop with
  the loop's own thread-safe call (asyncio's ``call_soon_threadsafe``, trio's
  ``run_sync_soon``, reached through anyio's event loop token);
* work that may block (closing the runtime, reading the journal) runs in a worker thread
  (``anyio.to_thread``).

The :class:`~sagactor.runtime.Runtime` and :class:`~sagactor.runtime.SagaRun` methods
(``astart``, ``astatus``, ``ahistory``, ``watch``, ``aclose``, ``async with``, ``await run``,
``run.wait``) delegate here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from .errors import SagaTimeout, UnknownSaga
from .messages import Outcome
from .persistence.recovery import saga_stream

if TYPE_CHECKING:
    from .runtime import HistoryEntry, Mode, Runtime, SagaRun
    from .sagas.definition import Saga
    from .sagas.native import Choreography

__all__ = [
    "call_soon_in_loop",
    "close_runtime",
    "history",
    "start_saga",
    "status",
    "wait_future",
    "wait_outcome",
    "watch",
]

T = TypeVar("T")


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
    board = runtime._outcomes
    future = board.wait(run.id)  # first wait, then look: an end in between is not missed
    try:
        with anyio.move_on_after(timeout):
            if not future.done():
                # It may have ended already (maybe before this runtime started): the journal
                # is read in a worker thread.
                ended = await anyio.to_thread.run_sync(runtime._ended_in_journal, run.id)
                if ended is not None:
                    return ended
                runtime._check_open()  # a closed runtime finishes nothing more: do not wait
            return await wait_future(future)
        raise SagaTimeout(run.id, timeout)
    finally:
        board.release(run.id, future)


async def status(runtime: Runtime, saga_id: str) -> Outcome:
    """``runtime.status`` in a worker thread (it reads the journal)."""
    return await anyio.to_thread.run_sync(runtime.status, saga_id)


async def history(runtime: Runtime, saga_id: str) -> list[HistoryEntry]:
    """``runtime.history`` in a worker thread (it reads the journal)."""
    return await anyio.to_thread.run_sync(runtime.history, saga_id)


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

    board = runtime._outcomes
    outcome = board.wait(saga_id)  # fails when the runtime closes or dies
    try:
        runtime._check_open()  # (after taking the future, so a closing now fails it)
    except BaseException:
        board.release(saga_id, outcome)
        raise
    unsubscribe = runtime._env.commits.subscribe(saga_id, poke)
    outcome.add_done_callback(lambda _: poke())
    try:
        cursor = (0, 0)
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
        board.release(saga_id, outcome)


def _raise_if_gone(outcome: Future[Outcome]) -> None:
    if outcome.done() and outcome.exception() is not None:
        outcome.result()  # raises RuntimeClosed or RuntimeCrashed


def _read_tail(
    runtime: Runtime, saga_id: str, cursor: tuple[int, int]
) -> tuple[list[HistoryEntry], tuple[int, int], bool]:
    """The saga's records after ``cursor`` (journal position, own seq; ``(0, 0)`` at first),
    its own and those it caused in participants' streams, each read by index.

    Returns its entries, the new cursor, and whether the latest saga event is terminal.

    Journal positions are assigned at commit, so a record never appears behind one already
    seen. The saga's own records are read first, and participant records are kept only up to
    the last of those (all committed already, so none is missed); a later one is read again
    after the saga's next record. Nothing is skipped or read twice.
    """
    journal = runtime.journal
    stream = saga_stream(saga_id)
    position, seq = cursor
    own = journal.read(stream, after=seq)
    if not own:
        if not seq:
            raise UnknownSaga(saga_id)
        return [], cursor, False
    cut = own[-1].position
    theirs = [
        r
        for r in journal.read_caused(saga_id, after=position)
        if r.stream != stream and r.position <= cut
    ]
    records = sorted([*own, *theirs], key=lambda r: r.position)
    entries = runtime._timeline.entries(saga_id, records, own)
    return entries, (cut, own[-1].seq), own[-1].final
