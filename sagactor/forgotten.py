"""Runtimes a script forgot to close are closed at interpreter exit, their journals flushed
and released (their actors run on daemon threads, so the interpreter reaches this hook)."""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import Protocol

__all__ = ["OPEN", "close_forgotten"]

logger = logging.getLogger("sagactor")

EXIT_GRACE = 10.0  # seconds an engine left open at exit waits for its running handlers


class _Closable(Protocol):
    def shutdown(self, grace: float | None) -> None: ...


OPEN: weakref.WeakSet[_Closable] = weakref.WeakSet()  # held weakly: a dropped runtime is gone


@atexit.register
def close_forgotten() -> None:
    for engine in list(OPEN):
        try:
            engine.shutdown(EXIT_GRACE)
        except Exception:
            logger.exception("closing %r at exit failed", engine)
