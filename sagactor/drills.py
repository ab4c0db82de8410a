"""Fault injection and crash simulation on a runtime: what tests and the playground use to
make handlers misbehave and to die like ``kill -9`` (a mixin of :class:`~sagactor.Runtime`)."""

from __future__ import annotations

from .actors.faults import Fault
from .crashpoints import CrashPoint
from .engine import Engine

__all__ = ["Drills"]


class Drills:
    """The faults and crashes part of :class:`~sagactor.Runtime`."""

    _engine: Engine

    def inject(
        self, participant: str, action: str, fault: Fault, *, compensation: bool = False
    ) -> None:
        """Make ``participant``'s handler for ``action`` misbehave (see :class:`Fault`)."""
        self._engine.catalog.ref(participant)  # UnknownParticipant if it is not registered
        self._engine.env.faults.inject(
            participant, action, fault, kind="compensation" if compensation else "action"
        )

    def clear_faults(self, participant: str | None = None) -> None:
        self._engine.env.faults.clear(participant)

    @property
    def faults(self) -> list[tuple[tuple[str, str, str], Fault]]:
        return self._engine.env.faults.items()

    def arm(self, point: CrashPoint | str, at_hit: int = 1) -> None:
        """Die at the ``at_hit``-th pass through ``point`` from now (a simulated ``kill -9``)."""
        self._engine.crash_plan.arm(point, at_hit)

    def crash(self) -> None:
        """Die now, as ``kill -9`` would: queued journal writes are lost, nothing else runs."""
        self._engine.crash()

    @property
    def crashed(self) -> bool:
        return self._engine.crashed

    def wait_until_crashed(self, timeout: float | None = None) -> bool:
        return self._engine.wait_until_crashed(timeout)
