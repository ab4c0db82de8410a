"""Named crash points: places where a test can make the runtime die as ``kill -9`` would.

A point armed for hit *n* raises :class:`SimulatedCrash` (a ``BaseException``, so no
``except Exception`` in user code swallows it) on its *n*-th pass, after telling the runtime to
stop everything at once: no later commit, reply or dispatch of that runtime happens.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from enum import StrEnum

__all__ = ["CrashPlan", "CrashPoint", "SimulatedCrash"]


class CrashPoint(StrEnum):
    """Where the runtime can be made to die."""

    AFTER_COMMIT = "after-commit"
    """A batch is durable, but nobody has heard of it yet."""
    BEFORE_REPLY = "before-reply"
    """A participant committed a step's effect; its reply is not sent."""
    BEFORE_DISPATCH = "before-dispatch"
    """A choreography participant's outbox is committed; its events are not dispatched."""
    MID_RECOVERY = "mid-recovery"
    """Recovery has resumed some in-flight sagas but not all."""


class SimulatedCrash(BaseException):
    """The runtime died at a crash point. Only tests should ever see this."""

    def __init__(self, point: CrashPoint, hit: int) -> None:
        super().__init__(f"simulated crash at {point} (hit {hit})")
        self.point = point
        self.hit = hit


class CrashPlan:
    """Counts passes through each point and fires the armed ones. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[CrashPoint, int] = {}
        self.hits: Counter[CrashPoint] = Counter()
        self.fired: SimulatedCrash | None = None
        self.on_crash: Callable[[BaseException], None] | None = None  # the runtime's death

    def arm(self, point: CrashPoint | str, at_hit: int = 1) -> None:
        """Crash on the ``at_hit``-th pass through ``point`` from now on."""
        point = CrashPoint(point)
        with self._lock:
            self._armed[point] = self.hits[point] + at_hit

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    def hit(self, point: CrashPoint) -> None:
        """Pass through ``point``; raises :class:`SimulatedCrash` if it is armed for this pass."""
        with self._lock:
            if self.fired is not None:
                raise self.fired
            self.hits[point] += 1
            if self._armed.get(point) != self.hits[point]:
                return
            del self._armed[point]
            crash = SimulatedCrash(point, self.hits[point])
            self.fired = crash
        if self.on_crash is not None:
            self.on_crash(crash)
        raise crash
