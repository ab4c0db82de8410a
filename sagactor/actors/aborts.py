"""A handler that raises ``KeyboardInterrupt``, ``SystemExit`` (or any other ``BaseException``
that is not an ``Exception``) ends its own runtime, and nothing else in the process.

Left alone, such an exception reaches pykka's actor loop, which stops *every* actor of the
process (``ActorRegistry.stop_all``): an unrelated second runtime would die too, and the
callers would only see timeouts. Instead the actor catches it and the runtime dies as at a
crash point (its callers get ``RuntimeCrashed``, nothing more is journaled); reopening the
journal resumes the saga. ``SimulatedCrash`` already means "this runtime is dead" and passes.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from ..crashpoints import CrashPlan
from ..errors import RuntimeCrashed

__all__ = ["HandlerAborted", "die_of"]

logger = logging.getLogger("sagactor")


class HandlerAborted(Exception):  # noqa: N818 - it names what happened to the handler
    """Carries a ``BaseException`` of an async handler out of the event loop (which it would
    otherwise stop) to the actor thread, where it is raised again."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


class _Mortal(Protocol):
    """What dying needs of an ``Environment`` (named so, not imported: the environment holds
    the portal, which raises ``HandlerAborted`` from here)."""

    @property
    def dead(self) -> threading.Event: ...

    @property
    def crash(self) -> CrashPlan: ...


def die_of(env: _Mortal, problem: str, error: BaseException | None = None) -> None:
    """End the runtime of ``env`` because of ``problem`` (``error`` if one was raised)."""
    if env.dead.is_set():
        return
    logger.error("the runtime dies: %s", problem, exc_info=error)
    crash = RuntimeCrashed(problem)
    crash.__cause__ = error
    if env.crash.on_crash is not None:
        env.crash.on_crash(crash)
    else:  # an environment without a runtime (a unit test): stop its actors at least
        env.dead.set()
