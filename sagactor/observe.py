"""What a runtime tells the world as sagas run: notices to listeners, and the `sagactor` log.

Why here, beside the vocabulary: the saga actors publish notices and the faces subscribe to
them, so the notice types and the listener set must sit below both.

A notice goes out only once its event is durable, in journal order per saga. Listeners run on
the runtime's own thread: they must be quick (count, time, hand off to a queue). One that
raises is logged and skipped, never allowed to disturb a saga.

Log levels (logger ``sagactor``, structured fields in ``extra``): a saga's start, end, cancel
and resume at INFO, a saga left stuck at WARNING, step events (attempts, retries, timeouts,
compensations) at DEBUG; recovery at INFO, each quarantined saga at WARNING.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeAlias

from .errors import DefinitionError
from .messages import SagaEvent, SagaStatus, event_name

__all__ = [
    "PROGRESS_EVERY",
    "Footprint",
    "Listener",
    "Listeners",
    "Metrics",
    "Notice",
    "RecoveryCallback",
    "RecoveryNotice",
    "RecoveryProgress",
    "SagaNotice",
    "log_level",
    "report_loading",
]

logger = logging.getLogger("sagactor")


@dataclass(frozen=True, slots=True)
class SagaNotice:
    """One durable event of one saga.

    ``step`` and ``attempt`` are set for step events; ``status`` is where the saga stands once
    the event's commit is applied (the same for events committed together).
    """

    saga_id: str
    saga: str
    type: str
    event: SagaEvent
    ts: float
    status: SagaStatus
    step: str | None = None
    attempt: int | None = None

    @property
    def final(self) -> bool:
        """True for the event that ends the saga (completed, compensated or stuck)."""
        return self.type in _FINAL


@dataclass(frozen=True, slots=True)
class RecoveryNotice:
    """A recovery ran: ``resumed`` in-flight sagas handed back to their actors, ``quarantined``
    ones set aside; from ``started`` to ``ended`` (wall clock)."""

    resumed: tuple[str, ...]
    quarantined: tuple[str, ...]
    started: float
    ended: float


@dataclass(frozen=True, slots=True)
class RecoveryProgress:
    """How far a recovery has come (``Runtime.open(..., recover=callback)``): ``loaded``
    in-flight sagas read and rebuilt so far, ``quarantined`` of them set aside; once ``done``,
    ``resumed`` of them were handed back to their actors."""

    loaded: int
    quarantined: int
    resumed: int = 0
    done: bool = False


RecoveryCallback: TypeAlias = Callable[[RecoveryProgress], Any]
PROGRESS_EVERY = 1000
"""A recovery reports (and logs at INFO) each time this many more sagas are loaded."""


def report_loading(progress: RecoveryCallback | None) -> Callable[[int, int], None]:
    """What recovery's load calls every :data:`PROGRESS_EVERY` sagas: an INFO line on the
    ``sagactor`` logger with the counts, and ``progress`` if given (a failing one is logged,
    never allowed to stop the recovery)."""

    def loading(loaded: int, quarantined: int) -> None:
        logger.info(
            "recovery: %d in-flight saga(s) loaded so far, %d quarantined",
            loaded,
            quarantined,
            extra={"loaded": loaded, "quarantined": quarantined},
        )
        _progress(progress, RecoveryProgress(loaded, quarantined))

    return loading


def _progress(progress: RecoveryCallback | None, report: RecoveryProgress) -> None:
    if progress is not None:
        try:
            progress(report)
        except Exception:  # a progress bar's bug must not stop a recovery
            logger.exception("recovery progress callback %r failed on %r", progress, report)


Notice: TypeAlias = SagaNotice | RecoveryNotice
Listener: TypeAlias = Callable[[Notice], Any]

_FINAL = frozenset({"SagaCompleted", "SagaCompensated", "SagaStuck"})
_SAGA_LEVEL = {
    "SagaStarted": logging.INFO,
    "SagaCompleted": logging.INFO,
    "SagaCompensated": logging.INFO,
    "SagaCancelled": logging.INFO,
    "SagaOverdue": logging.WARNING,  # its deadline passed: an operator wants to know
    "SagaResumed": logging.INFO,
    "StepResolved": logging.WARNING,  # an operator settled a step by hand: worth noticing
    "SagaStuck": logging.WARNING,
}


def log_level(event_type: str) -> int:
    """The level an event of this type is logged at."""
    return _SAGA_LEVEL.get(event_type, logging.DEBUG)


class Listeners:
    """The listeners of one runtime. Thread-safe; publishing copies nothing when there are
    none and nothing is logged at the events' levels (the common, fast case)."""

    __slots__ = ("_listeners", "_lock", "_scopes")

    def __init__(self, listeners: Sequence[Listener] = ()) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()
        self._scopes: tuple[Callable[[str, str, str], AbstractContextManager[Any]], ...] = ()
        for listener in listeners:
            self.add(listener)

    def add(self, listener: Listener) -> Callable[[], None]:
        """Subscribe ``listener``; returns the call that unsubscribes it."""
        if not callable(listener):
            raise DefinitionError("listener", f"{listener!r} is not callable", kind="setting")
        scope = getattr(listener, "handler_scope", None)
        with self._lock:
            self._listeners = (*self._listeners, listener)
            if callable(scope):
                self._scopes = (*self._scopes, scope)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)
                self._scopes = tuple(x for x in self._scopes if x != scope)

        return remove

    def scope(self, saga_id: str, step: str, kind: str) -> AbstractContextManager[Any]:
        """What a handler of this step runs inside: the scopes listeners offer through a
        ``handler_scope(saga_id, step, kind)`` method (a tracer's current span, say)."""
        scopes = self._scopes
        if not scopes:
            return _NO_SCOPE
        if len(scopes) == 1:
            return scopes[0](saga_id, step, kind)
        stack = contextlib.ExitStack()
        for scope in scopes:
            stack.enter_context(scope(saga_id, step, kind))
        return stack

    def __len__(self) -> int:
        return len(self._listeners)

    def saga_events(
        self, saga_id: str, saga: str, status: SagaStatus, events: Sequence[SagaEvent], ts: float
    ) -> None:
        """Publish the events of one commit (already durable) and log them."""
        listeners = self._listeners
        logging_on = logger.isEnabledFor(logging.DEBUG) or (
            logger.isEnabledFor(logging.INFO) and any(_is_saga_level(e) for e in events)
        )
        if not listeners and not logging_on:
            return
        for event in events:
            name = event_name(event)
            notice = SagaNotice(
                saga_id,
                saga,
                name,
                event,
                ts,
                status,
                getattr(event, "step", None),
                getattr(event, "attempt", None),
            )
            if logging_on:
                _log(notice)
            self._publish(listeners, notice)

    def recovery(self, notice: RecoveryNotice, progress: RecoveryCallback | None = None) -> None:
        """Log and publish the end of a recovery (and tell its ``progress`` callback)."""
        done = len(notice.resumed) + len(notice.quarantined)
        _progress(
            progress, RecoveryProgress(done, len(notice.quarantined), len(notice.resumed), True)
        )
        logger.info(
            "recovery: %d in-flight saga(s) resumed, %d quarantined in %.3f s",
            len(notice.resumed),
            len(notice.quarantined),
            notice.ended - notice.started,
            extra={
                "resumed": len(notice.resumed),
                "quarantined": len(notice.quarantined),
                "seconds": notice.ended - notice.started,
            },
        )
        self._publish(self._listeners, notice)

    @staticmethod
    def _publish(listeners: tuple[Listener, ...], notice: Notice) -> None:
        for listener in listeners:
            try:
                listener(notice)
            except Exception:  # a listener's bug must never disturb a saga
                logger.exception("listener %r failed on %r", listener, notice)


@dataclass(frozen=True, slots=True)
class Footprint:
    """What a runtime holds for its sagas (``Runtime.footprint()``): bounded by live work, not
    by how many sagas ever ran."""

    sagas: int
    """Sagas the coordinator and the dispatcher drive now (in flight)."""
    waiters: int
    """Calls waiting for a saga's outcome now."""
    inbox: dict[str, int]
    """Inbox records each participant keeps (those of sagas not yet ended)."""
    snapshot_bytes: dict[str, int]
    """Size of each participant's latest snapshot."""


_NO_SCOPE = contextlib.nullcontext()


class Metrics:
    """A listener that counts and times, with no dependency: sagas ended by type and status,
    step attempts, retries, timeouts and compensations, and saga durations (start to end, for
    sagas whose start this runtime saw). ``snapshot()`` is a copy, safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._started: dict[str, float] = {}  # saga id -> its start, while in flight
        self._durations: dict[str, list[float]] = {}  # saga type -> seconds, newest last
        self.keep = 10_000  # durations kept per saga type (a sliding window)

    def __call__(self, notice: Notice) -> None:
        if isinstance(notice, RecoveryNotice):
            self._count("recoveries")
            return
        with self._lock:
            self._bump(f"events.{notice.type}")
            if notice.type == "SagaStarted":
                self._started[notice.saga_id] = notice.ts
            elif notice.final:
                self._bump(f"sagas.{notice.saga}.{notice.status.value}")
                began = self._started.pop(notice.saga_id, None)
                if began is not None:
                    window = self._durations.setdefault(notice.saga, [])
                    window.append(notice.ts - began)
                    del window[: -self.keep]

    def snapshot(self) -> dict[str, Any]:
        """``counts`` (by ``events.<Type>``, ``sagas.<saga>.<status>``, ``recoveries``),
        ``durations`` (seconds by saga type: count, p50, p99, max) and ``in_flight``."""
        with self._lock:
            durations = {}
            for saga, window in self._durations.items():
                ordered = sorted(window)
                durations[saga] = {
                    "count": len(ordered),
                    "p50": ordered[len(ordered) // 2],
                    "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                    "max": ordered[-1],
                }
            return {
                "counts": dict(self._counts),
                "durations": durations,
                "in_flight": len(self._started),
            }

    def _count(self, key: str) -> None:
        with self._lock:
            self._bump(key)

    def _bump(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1


def _is_saga_level(event: SagaEvent) -> bool:
    return event_name(event) in _SAGA_LEVEL


def _log(notice: SagaNotice) -> None:
    level = log_level(notice.type)
    if not logger.isEnabledFor(level):
        return
    details = _details(notice)
    logger.log(
        level,
        "saga %s (%s): %s%s",
        notice.saga_id,
        notice.saga,
        notice.type,
        "".join(f" {key}={value}" for key, value in details.items()),
        extra={
            "saga_id": notice.saga_id,
            "saga_type": notice.saga,
            "saga_event": notice.type,
            "saga_status": notice.status.value,
            **{f"saga_{key}": value for key, value in details.items()},
        },
    )


def _details(notice: SagaNotice) -> dict[str, Any]:
    """The event's readable fields (payload bytes left out)."""
    found: dict[str, Any] = {}
    for key in ("step", "attempt", "reason", "error", "limit", "outcome", "mode", "event_type"):
        value = getattr(notice.event, key, None)
        if value is not None and value != "":
            found[key] = value
    return found
