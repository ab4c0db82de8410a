"""One thread that turns due times into callbacks: step timeouts and retry back-off.

Due times are wall-clock (``clock.now()``) because they are journaled: a deadline recorded
before a restart is still the deadline after it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

from .. import clock

__all__ = ["TimerService"]

logger = logging.getLogger("sagactor.timers")


class TimerService:
    def __init__(self, name: str = "sagactor-timers") -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def schedule(self, due: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the timer thread) at wall-clock time ``due``."""
        with self._wake:
            if self._stopped:
                return
            entry = (due, next(self._order), callback)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._wake.notify()

    def stop(self) -> None:
        """Drop every pending timer and end the thread."""
        with self._wake:
            self._stopped = True
            self._heap.clear()
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __len__(self) -> int:
        with self._wake:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    now = clock.now()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._wake.wait(self._heap[0][0] - now if self._heap else None)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                # A timer must never kill the thread that serves all the others.
                logger.exception("timer callback failed")
