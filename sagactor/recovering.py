"""Recovery in the background: ``Runtime.open(..., recover="background")`` returns once the
journal is open, and the in-flight sagas are loaded and resumed on a thread of their own (the
way DBOS recovers pending workflows at launch, and Akka persistent actors recover on their own).

Which sagas recovery covers is fixed before ``open`` returns (the journal's open saga streams,
one index scan): a saga started meanwhile is driven by this runtime from its start and is
never taken for one to recover. Until recovery is done, what acts on an existing saga (signal,
cancel, resume, resolve, restart, retry of a quarantined or dead saga, another recover) waits
for it, and so does a start under a ``max_in_flight`` limit (recovered sagas take their slots
first). Other starts, ``status``, ``history``, ``list`` and waiting for outcomes do not wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from . import clock
from .errors import DefinitionError, RecoveryPending
from .names import SAGA_PREFIX
from .observe import RecoveryCallback, RecoveryNotice, report_loading
from .persistence.recovery import find_in_flight

__all__ = [
    "BACKGROUND",
    "Recover",
    "RecoveryGate",
    "check_recover",
    "open_sagas",
    "recover",
    "waits_for_recovery",
]

logger = logging.getLogger("sagactor")

BACKGROUND: Literal["background"] = "background"
# What ``Runtime(..., recover=...)`` takes: resume before returning (True, or a progress
# callback), not at all (False), or in the background.
Recover: TypeAlias = bool | Literal["background"] | RecoveryCallback


class RecoveryGate:
    """Whether a recovery runs in the background; what waits for it waits here."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._done.set()
        self._thread: threading.Thread | None = None
        self._resumed: list[str] = []
        self._error: BaseException | None = None

    @property
    def pending(self) -> bool:
        return not self._done.is_set()

    def begin(self, recover: Callable[[], list[str]], *, threaded: bool = True) -> None:
        """Run ``recover`` on a thread of its own; :meth:`wait` waits for its end. Not
        ``threaded`` (a simulation: one thread runs everything), it runs here and now."""
        if not threaded:
            self._run(recover)
            return
        self._done.clear()
        self._thread = threading.Thread(
            target=self._run, args=(recover,), name="sagactor-recovery", daemon=True
        )
        self._thread.start()

    def _run(self, recover: Callable[[], list[str]]) -> None:
        try:
            self._resumed = recover()
        except BaseException as error:  # noqa: BLE001 - kept for wait(), which raises it
            self._error = error
            logger.warning("background recovery stopped: %s", error)
        finally:
            self._done.set()

    def hold(self) -> None:
        """Wait until a background recovery is done (at once when none runs)."""
        if self._done.is_set() or threading.current_thread() is self._thread:
            return
        self._done.wait()

    def wait(self, timeout: float | None = None) -> list[str]:
        """The ids the last background recovery resumed, once it is done.

        Raises:
            RecoveryPending: It is not done within ``timeout`` seconds.
            SagactorError: What stopped it (the runtime crashed or closed, the journal failed).
        """
        if not self._done.wait(timeout):
            raise RecoveryPending(timeout)
        if self._error is not None:
            raise self._error
        return list(self._resumed)

    def join(self, timeout: float | None = None) -> None:
        """Let a background recovery end (the runtime closes: its actors are gone)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


def check_recover(recover: object) -> None:
    """Refuse a ``recover=`` that is none of True, False, "background" or a callable (a typo
    must not quietly mean "recover before open returns")."""
    if isinstance(recover, bool) or recover == BACKGROUND or callable(recover):
        return
    raise DefinitionError(
        "recover",
        f'must be True, False, "background" or a callable, not {recover!r}',
        kind="setting",
    )


def waits_for_recovery(definition: Any, fork: Any) -> bool:
    """A start that must wait for a background recovery: a fork (it reads its origin) or one
    under a ``max_in_flight`` limit (recovered sagas hold their slots first)."""
    return fork is not None or getattr(definition, "max_in_flight", None) is not None


def recover(engine: Any, progress: RecoveryCallback | None, only: set[str] | None) -> list[str]:
    """Resume the in-flight sagas of the journal (of ``only`` these streams, when given),
    quarantining those that cannot load; returns the ids resumed. ``engine`` is the runtime's
    :class:`~sagactor.engine.Engine` (not imported: it imports this module)."""
    engine.check_open()
    started = clock.now()
    found = find_in_flight(
        engine.journal, engine.catalog.definitions, report_loading(progress), only=only
    )
    for error in found.quarantined:
        engine.quarantine.add(error)
        logger.warning("%s", error, extra={"saga_id": error.saga_id})
    for state in found.states:
        engine.quarantine.release(state.saga_id)  # its cause was fixed since
    engine.check_open()  # closed while loading: count no recovery attempt (dead letters)
    states, _parked = engine.dead_letters.screen(engine.journal, found.states, found.stalled)
    resumed: list[str] = engine.take_over(states)
    quarantined = tuple(error.saga_id for error in found.quarantined)
    notice = RecoveryNotice(tuple(resumed), quarantined, started, clock.now())
    engine.env.listeners.recovery(notice, progress)
    return resumed


def open_sagas(engine: Any) -> set[str]:
    """The streams a background recovery will cover: those open now (one index scan)."""
    return set(engine.journal.open_streams(SAGA_PREFIX))
