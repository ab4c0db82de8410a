"""The async face of the runtime, for asyncio and trio applications alike (through anyio).

Nothing here blocks the caller's event loop, and the runtime's threads never wait for it:

* a runtime thread wakes an async waiter by scheduling ``Event.set`` on the waiter's loop with
  the loop's own thread-safe call (asyncio's ``call_soon_threadsafe``, trio's
  ``run_sync_soon``, reached through anyio's event loop token);
* work that may block (closing the runtime, reading the journal) runs in a worker thread
  (``anyio.to_thread``).

Every function works on the :class:`~sagactor.engine.Engine` through its public methods, as
the sync face does; the :class:`~sagactor.Runtime` and :class:`~sagactor.SagaRun` methods
(``astart``, ``astatus``, ``ahistory``, ``watch``, ``aclose``, ``async with``, ``await run``,
``run.wait``) delegate here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from .engine import Engine
from .errors import SagaTimeout, UnknownSaga
from .history import HistoryEntry
from .messages import Outcome
from .names import Mode, saga_stream
from .recovering import waits_for_recovery
from .sagas.definition import Choreography, Saga

__all__ = [
    "Settling",
    "call_soon_in_loop",
    "close_engine",
    "history",
    "start_saga",
    "status",
    "wait_completion",
    "wait_future",
    "wait_outcome",
    "watch",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Settling(Protocol[T_co]):
    """What is awaited here: a ``concurrent.futures.Future``, or a saga's ``Completion``."""

    def done(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], Any], /) -> None: ...

    def result(self, timeout: float | None = None) -> T_co: ...

    def exception(self) -> BaseException | None: ...


def call_soon_in_loop(token: anyio.lowlevel.EventLoopToken) -> Callable[[Callable[[], Any]], None]:
    """A function that schedules a callback on the loop of ``token``, from any thread.

    It never blocks and never raises: once that loop has ended, the callback is dropped.
    """

    def schedule(callback: Callable[[], Any]) -> None:
        with contextlib.suppress(RuntimeError):  # anyio.RunFinishedError: the loop is gone
            token.backend_class.run_sync_soon(callback, (), token.native_token)

    return schedule


async def wait_future(future: Settling[T]) -> T:
    """Await a thread-side future without blocking the event loop."""
    if not future.done():
        event = anyio.Event()
        schedule = call_soon_in_loop(anyio.lowlevel.current_token())
        future.add_done_callback(lambda _: schedule(event.set))
        await event.wait()
    return future.result()


async def wait_outcome(engine: Engine, saga_id: str, timeout: float | None = None) -> Outcome:
    """The saga's outcome once it ends; :class:`SagaTimeout` after ``timeout`` seconds."""
    waiter = engine.outcomes.wait(saga_id)  # first wait, then look: an end in between is not missed
    try:
        with anyio.move_on_after(timeout):
            if not waiter.done():
                # It may have ended already (maybe before this runtime started): the journal
                # is read in a worker thread.
                ended = await anyio.to_thread.run_sync(engine.ended_in_journal, saga_id)
                if ended is not None:
                    return ended
                engine.check_open()  # a closed runtime finishes nothing more: do not wait
            return await wait_future(waiter)
        raise SagaTimeout(saga_id, timeout)
    finally:
        engine.outcomes.release(saga_id, waiter)


async def wait_completion(
    completion: Settling[Outcome], saga_id: str, timeout: float | None = None
) -> Outcome:
    """The outcome a saga's completion gives (see ``SagaRun``); :class:`SagaTimeout` after
    ``timeout`` seconds."""
    with anyio.move_on_after(timeout):
        return await wait_future(completion)
    raise SagaTimeout(saga_id, timeout)


async def status(engine: Engine, saga_id: str) -> Outcome:
    """``Runtime.status`` in a worker thread (it reads the journal)."""
    return await anyio.to_thread.run_sync(engine.status, saga_id)


async def history(engine: Engine, saga_id: str) -> list[HistoryEntry]:
    """``Runtime.history`` in a worker thread (it reads the journal)."""
    return await anyio.to_thread.run_sync(engine.history, saga_id)


async def start_saga(
    engine: Engine,
    saga: Saga | Choreography,
    input: Any,
    *,
    saga_id: str | None = None,
    mode: Mode = "orchestration",
    priority: int = 0,
) -> str:
    """``Runtime.start`` without blocking: submit, then await the journal's acceptance; the
    saga's id.

    If the caller is cancelled while it waits, the saga may still start (the request is out):
    pass a ``saga_id`` to find it again, starting the same id twice is harmless.
    """
    ids = None if saga_id is None else [saga_id]
    if engine.recovery.pending and waits_for_recovery(engine.catalog.definition(saga), None):
        await anyio.to_thread.run_sync(engine.recovery.hold)  # not on the loop
    submitted = engine.submit(saga, [input], ids, mode, priority)
    futures = [start.accepted for start in submitted]
    try:
        return await wait_future(futures[0])
    finally:
        engine.settle(futures)


async def close_engine(engine: Engine) -> None:
    """``Runtime.close()`` in a worker thread: it joins actor threads, the loop must not wait."""
    await anyio.to_thread.run_sync(engine.shutdown, None)


async def watch(engine: Engine, saga_id: str) -> AsyncIterator[HistoryEntry]:
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

    outcome = engine.outcomes.wait(saga_id)  # fails when the runtime closes or dies
    try:
        engine.check_open()  # (after taking the future, so a closing now fails it)
    except BaseException:
        engine.outcomes.release(saga_id, outcome)
        raise
    unsubscribe = engine.on_commit(saga_id, poke)
    outcome.add_done_callback(lambda _: poke())
    try:
        cursor = (0, 0)
        while True:
            _raise_if_gone(outcome)
            wakeup[0] = anyio.Event()  # before reading: a commit during the read wakes us
            try:
                entries, cursor, ended = await anyio.to_thread.run_sync(
                    _read_tail, engine, saga_id, cursor
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
        engine.outcomes.release(saga_id, outcome)


def _raise_if_gone(outcome: Settling[Outcome]) -> None:
    if outcome.done() and outcome.exception() is not None:
        outcome.result()  # raises RuntimeClosed or RuntimeCrashed


def _read_tail(
    engine: Engine, saga_id: str, cursor: tuple[int, int]
) -> tuple[list[HistoryEntry], tuple[int, int], bool]:
    """The saga's records after ``cursor`` (journal position, own seq; ``(0, 0)`` at first),
    its own and those it caused in participants' streams, each read by index.

    Returns its entries, the new cursor, and whether the latest saga event is terminal.

    Journal positions are assigned at commit, so a record never appears behind one already
    seen. The saga's own records are read first, and participant records are kept only up to
    the last of those (all committed already, so none is missed); a later one is read again
    after the saga's next record. Nothing is skipped or read twice.
    """
    journal = engine.journal
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
    entries = engine.timeline.entries(saga_id, records, own)
    return entries, (cut, own[-1].seq), own[-1].final
