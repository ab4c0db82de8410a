"""Bridges from the runtime's threads to asyncio or trio (through anyio), never blocking either.

A thread wakes an async waiter by scheduling ``Event.set`` on the waiter's loop with the loop's
own thread-safe call (``call_soon_threadsafe`` or trio's ``run_sync_soon``): the runtime's
threads never wait for the application's loop, and the loop never waits for a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["call_soon_in_loop", "wait_future"]

T = TypeVar("T")


def call_soon_in_loop(token: anyio.lowlevel.EventLoopToken) -> Callable[[Callable[[], Any]], None]:
    """A function that schedules a callback on the loop of ``token``, from any thread."""
    native: Any = token.native_token
    if hasattr(native, "call_soon_threadsafe"):
        return lambda callback: native.call_soon_threadsafe(callback)
    return lambda callback: native.run_sync_soon(callback)


async def wait_future(future: Future[T]) -> T:
    """Await a thread-side future without blocking the event loop."""
    if not future.done():
        event = anyio.Event()
        schedule = call_soon_in_loop(anyio.lowlevel.current_token())
        future.add_done_callback(lambda _: schedule(event.set))
        await event.wait()
    return future.result()
