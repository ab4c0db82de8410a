"""Where the actor threads meet event loops: async handlers, and commit signals for watchers.

:class:`HandlerPortal` runs ``async def`` participant handlers on one event loop that the runtime
owns, in a thread of its own, through anyio's blocking portal. The participant's actor thread
waits for its handler as it would for a sync one (one mailbox, one handler at a time); handlers
of different participants overlap on the loop while they await I/O. The loop starts when the
first participant with an async handler is registered (or at the first async call) and stops
when the runtime closes or dies; running handlers are then cancelled.

A handler that outlives its time limit (``Command.timeout``: the step's ``timeout``, or its
``compensation_timeout`` for a compensation) is cancelled through an anyio cancel scope and
raises :class:`HandlerCancelled` in the actor thread. The limit counts from the handler's
start, like the coordinator's start-to-close timer, which the host armed just before by
reporting ``Began``; so the cancel never comes before that timer. The host then applies
nothing (the changes the handler recorded are undone). An action replies nothing: the
coordinator's timer decides, by the same rule in both modes (retry under the step's policy,
or in doubt once attempts run out). A compensation replies a retryable error with the same
text as the timer's, so whichever arrives first counts, alike.

A ``KeyboardInterrupt`` or ``SystemExit`` raised by a handler would stop the loop (and every
handler on it): it travels to the actor thread as a ``HandlerAborted`` (see ``aborts``) and
is raised there again, where it ends this runtime only.

:class:`CommitSignals` lets the journal side tell async watchers (``Runtime.watch``) that a
saga has new records, without knowing anything about event loops.

anyio is imported only when the loop starts, so purely synchronous users never load it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from .aborts import HandlerAborted
from .participant import Participant, StepContext


class _Timed(Protocol):
    """A message with a handler time limit (seconds, 0 for none)."""

    @property
    def timeout(self) -> float: ...


if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal


__all__ = ["CommitSignals", "HandlerCancelled", "HandlerPortal", "has_async_handlers"]

logger = logging.getLogger("sagactor.portal")

AsyncHandler = Callable[..., Awaitable[Any]]


class HandlerCancelled(Exception):  # noqa: N818 - it names what happened to the handler
    """An async handler was cancelled before it finished: its step timed out, or the runtime
    closed or died. Nothing of it is applied and nothing is replied."""


def has_async_handlers(participant: Participant[Any]) -> bool:
    kind = type(participant)
    specs = [*kind._actions.values(), *kind._compensations.values(), *kind._reactions.values()]
    return any(spec.is_async for spec in specs)


class HandlerPortal:
    """The runtime's event loop for async handlers (a thread running an anyio blocking portal).

    ``backend`` is an anyio backend name (``"asyncio"`` or ``"trio"``): the library the
    handlers are written for. Handlers written with anyio run on either. Thread-safe.
    """

    def __init__(self, backend: str = "asyncio") -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._context: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._loop_thread: int | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        return self._portal is not None

    def start(self) -> None:
        """Start the loop now (idempotent); after :meth:`close` it stays closed."""
        self._ensure()

    def _ensure(self) -> BlockingPortal | None:
        portal = self._portal
        if portal is not None:
            return portal
        with self._lock:
            if self._closed:
                return None
            if self._portal is None:
                from anyio.from_thread import start_blocking_portal

                context = start_blocking_portal(self.backend)
                portal = context.__enter__()
                self._loop_thread = portal.call(threading.get_ident)
                self._context, self._portal = context, portal
            return self._portal

    def run_handler(
        self, method: AsyncHandler, ctx: StepContext, args: list[Any], cmd: _Timed
    ) -> Any:
        """Run ``await method(ctx, *args)`` on the loop and wait for it (from an actor thread).

        Returns its result or raises its exception; raises :class:`HandlerCancelled` when the
        command's ``timeout`` (seconds, 0 for none) ran out first or the portal closed.
        """
        portal = self._ensure()
        if portal is None:
            raise HandlerCancelled("the runtime is closed")
        try:
            return portal.call(_guarded, method, ctx, args, cmd.timeout)
        except HandlerAborted as aborted:
            raise aborted.error from None  # KeyboardInterrupt, SystemExit: the host's to handle
        except CancelledError as error:  # the portal stopped and cancelled the handler
            raise HandlerCancelled("the runtime closed while the handler ran") from error
        except RuntimeError:
            if self._closed:  # "this portal is not running": closed just before the call
                raise HandlerCancelled("the runtime is closed") from None
            raise

    def close(self) -> None:
        """Cancel the handlers still running and stop the loop (idempotent, any thread).

        Waits for the loop to end, unless called from the loop itself (a handler that
        crashes the runtime): then the loop ends just after.
        """
        with self._lock:
            self._closed = True
            context, portal = self._context, self._portal
            self._context = self._portal = None
        if context is None or portal is None:
            return
        if threading.get_ident() == self._loop_thread:
            threading.Thread(target=_stop, args=(context, portal), daemon=True).start()
        else:
            _stop(context, portal)


def _stop(context: AbstractContextManager[BlockingPortal], portal: BlockingPortal) -> None:
    with contextlib.suppress(RuntimeError):  # already stopped
        portal.call(portal.stop, True)  # cancel what still runs
    context.__exit__(None, None, None)


async def _guarded(method: AsyncHandler, ctx: StepContext, args: list[Any], timeout: float) -> Any:
    import anyio

    try:
        return await _run(method, ctx, args, timeout)
    except Exception:
        raise
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException as error:
        raise HandlerAborted(error) from error


async def _run(method: AsyncHandler, ctx: StepContext, args: list[Any], timeout: float) -> Any:
    if timeout <= 0:
        return await method(ctx, *args)
    import anyio

    scope = anyio.move_on_after(timeout)
    try:
        with scope:
            return await method(ctx, *args)
    except Exception as error:
        # Raised while being cancelled (a client turning cancellation into its own error):
        # still a timeout, so that a retry policy never runs the step again past its deadline.
        if scope.cancel_called:
            raise HandlerCancelled(f"timed out after {timeout}s ({error!r})") from error
        raise
    raise HandlerCancelled(f"timed out after {timeout}s")


class CommitSignals:
    """Who wants to know when a saga's records commit (thread-safe; ``notify`` never raises).

    The coordinator and the participant hosts call :meth:`notify` from their commit callbacks;
    ``Runtime.watch`` subscribes a callback that wakes its event loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_saga: dict[str, list[Callable[[], None]]] = {}

    def subscribe(self, saga_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on a runtime thread; it must not block) after each commit of
        ``saga_id``'s records. Returns the function that unsubscribes."""
        with self._lock:
            self._by_saga.setdefault(saga_id, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._by_saga.get(saga_id)
                if callbacks is not None and callback in callbacks:
                    callbacks.remove(callback)
                    if not callbacks:
                        del self._by_saga[saga_id]

        return unsubscribe

    def notify(self, saga_id: str) -> None:
        if not self._by_saga:  # nobody watches: the hot path takes no lock
            return
        with self._lock:
            callbacks = list(self._by_saga.get(saga_id, ()))
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("a commit signal callback for saga %s failed", saga_id)
