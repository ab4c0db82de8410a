"""Signals from outside into a running saga: ``Runtime.signal`` and ``Runtime.asignal``.

A signal goes to the coordinator, which journals it in the saga's own stream
(``SignalReceived``) before it answers; a ``WaitFor`` step of that name consumes it (see
:mod:`sagactor.sagas.waits`). Each signal has an id, unique per saga: a copy of one already
journaled changes nothing and is reported as such (``signal`` returns False), so a caller
may resend after a crash or a lost answer without a second delivery.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from concurrent.futures import Future
from typing import Any

import anyio
import msgspec

from .actor_messages import Signal
from .engine import Engine
from .errors import SignalRefused
from .sagas.definition import Choreography

__all__ = ["asignal", "signal"]

_POLL = 0.2  # seconds between checks that the runtime still lives while a signal is journaled


def signal(engine: Engine, saga_id: str, name: str, payload: Any, signal_id: str | None) -> bool:
    """Deliver the signal and wait until it is journaled; see ``Runtime.signal``."""
    engine.check_open()
    engine.not_quarantined(saga_id)  # UnknownSaga for an id never started
    if isinstance(engine.catalog.definition_of(saga_id), Choreography):
        raise SignalRefused(saga_id, name, "a native choreography has no WaitFor steps")
    try:
        raw = msgspec.msgpack.encode(payload)
    except (TypeError, msgspec.EncodeError) as error:
        raise SignalRefused(saga_id, name, f"the payload cannot be encoded: {error}") from error
    delivered: Future[str] = Future()
    message = Signal(saga_id, name, signal_id or uuid.uuid4().hex, msgspec.Raw(raw), delivered)
    engine.tell(engine._coordinator, message)  # the driver of step-list sagas
    while True:
        try:
            return bool(delivered.result(timeout=_POLL))
        except concurrent.futures.TimeoutError:
            engine.check_open()  # a crash or a close answers for a journal that never will


async def asignal(
    engine: Engine, saga_id: str, name: str, payload: Any, signal_id: str | None
) -> bool:
    """:func:`signal` for async callers: the wait runs in a worker thread."""
    return await anyio.to_thread.run_sync(lambda: signal(engine, saga_id, name, payload, signal_id))
