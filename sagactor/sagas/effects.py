"""What the saga machine asks of whoever drives it: send a command, set a timer, or finish.

:func:`~sagactor.sagas.machine.pending` and :func:`~sagactor.sagas.machine.begin` return these;
the coordinator (and the step-list choreography's routing) carry them out. Pure values.
"""

from __future__ import annotations

import msgspec

from ..actor_messages import Timeout, Wake
from ..messages import SagaStatus
from ..names import SCHEDULE

__all__ = ["Effect", "Finish", "Send", "Timer"]


class Send(msgspec.Struct, frozen=True):
    """Send the step's action or compensation (``kind``) to its participant. If
    ``schedule_timeout`` is set, whoever sends it arms :meth:`schedule_timer` then."""

    step: str
    kind: str
    attempt: int
    schedule_timeout: float = 0.0
    attempt_base: int = 0  # a compensation's attempts before an operator's resume

    def schedule_timer(self, saga_id: str, now: float) -> Timer | None:
        """The schedule-to-start timer of this command, sent at ``now``."""
        if not self.schedule_timeout:
            return None
        timeout = Timeout(saga_id, self.step, self.kind, self.attempt, SCHEDULE)
        return Timer(now + self.schedule_timeout, timeout)


class Timer(msgspec.Struct, frozen=True):
    """Deliver ``message`` to the coordinator at wall-clock time ``due``."""

    due: float
    message: Timeout | Wake


class Finish(msgspec.Struct, frozen=True):
    status: SagaStatus


Effect = Send | Timer | Finish
