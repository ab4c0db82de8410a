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

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from .errors import DefinitionError
from .messages import SagaEvent, SagaStatus

__all__ = ["Listener", "Listeners", "Notice", "RecoveryNotice", "SagaNotice", "log_level"]

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


Notice: TypeAlias = SagaNotice | RecoveryNotice
Listener: TypeAlias = Callable[[Notice], Any]

_FINAL = frozenset({"SagaCompleted", "SagaCompensated", "SagaStuck"})
_SAGA_LEVEL = {
    "SagaStarted": logging.INFO,
    "SagaCompleted": logging.INFO,
    "SagaCompensated": logging.INFO,
    "SagaCancelled": logging.INFO,
    "SagaResumed": logging.INFO,
    "SagaStuck": logging.WARNING,
}


def log_level(event_type: str) -> int:
    """The level an event of this type is logged at."""
    return _SAGA_LEVEL.get(event_type, logging.DEBUG)


class Listeners:
    """The listeners of one runtime. Thread-safe; publishing copies nothing when there are
    none and nothing is logged at the events' levels (the common, fast case)."""

    __slots__ = ("_listeners", "_lock")

    def __init__(self, listeners: Sequence[Listener] = ()) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = tuple(listeners)

    def add(self, listener: Listener) -> Callable[[], None]:
        """Subscribe ``listener``; returns the call that unsubscribes it."""
        if not callable(listener):
            raise DefinitionError("listener", f"{listener!r} is not callable", kind="setting")
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

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
            name = type(event).__name__
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

    def recovery(self, notice: RecoveryNotice) -> None:
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


def _is_saga_level(event: SagaEvent) -> bool:
    return type(event).__name__ in _SAGA_LEVEL


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
