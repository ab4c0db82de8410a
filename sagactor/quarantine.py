"""Sagas set aside: in flight, but they cannot be loaded; each kept with its error.

A saga that cannot be loaded (see :func:`~sagactor.persistence.recovery.load_saga`) never stops
the others: it waits here, visible (``Runtime.quarantined``) and retryable
(``Runtime.retry_quarantined``), while its waiters learn why at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from .actors.outcomes import OutcomeBoard
from .errors import JournalCorrupt, SagaQuarantined, UnknownSaga
from .messages import Outcome, SagaStatus
from .names import saga_stream
from .persistence.journal import Journal
from .persistence.recovery import decode_saga_events, load_saga, saga_name
from .sagas.definition import Choreography, Saga
from .sagas.fold import summarize
from .sagas.machine import SagaState
from .sagas.native import NativeState

__all__ = ["Quarantine", "quarantined_outcome"]

logger = logging.getLogger("sagactor")


class Quarantine:
    """In-flight sagas that could not be loaded, each with its error (thread-safe).

    An in-memory fact, found again at every open: the cause is usually fixed by a code change
    (a definition registered again, a decoder repaired), which no journal entry could record.
    Whoever waits for a quarantined saga's outcome learns it at once, as a
    :class:`SagaQuarantined` error, instead of waiting for nothing.
    """

    def __init__(self, outcomes: OutcomeBoard) -> None:
        self._lock = threading.Lock()
        self._errors: dict[str, SagaQuarantined] = {}
        self._outcomes = outcomes

    def add(self, error: SagaQuarantined) -> SagaQuarantined:
        with self._lock:
            self._errors[error.saga_id] = error
        self._outcomes.fail(error.saga_id, error)  # whoever waits learns it at once
        logger.warning("%s", error)
        return error

    def release(self, saga_id: str) -> None:
        """It loads now: forget its error (and the failed wait for its outcome)."""
        with self._lock:
            self._errors.pop(saga_id, None)

    def load(
        self, journal: Journal, saga_id: str, definitions: Mapping[str, Saga | Choreography]
    ) -> SagaState | NativeState | None:
        """The saga rebuilt, for an actor to drive; None if there is no such saga or it cannot
        be loaded (an in-flight one is then quarantined)."""
        records = journal.read(saga_stream(saga_id))
        if not records:
            return None
        try:
            return load_saga(journal, saga_id, records, definitions)
        except SagaQuarantined as error:
            if not records[-1].final:
                self.add(error)
            return None

    def retry(
        self, journal: Journal, saga_id: str, definitions: Mapping[str, Saga | Choreography]
    ) -> SagaState | NativeState:
        """Load a quarantined saga again: released if it loads, else quarantined anew (raised)."""
        try:
            state = load_saga(journal, saga_id, journal.read(saga_stream(saga_id)), definitions)
        except SagaQuarantined as error:
            raise self.add(error) from error.cause
        self.release(saga_id)
        return state

    def outcome(self, journal: Journal, saga_id: str) -> Outcome:
        """Where the saga stands by its own events (no definition needed), or ``quarantined``.

        Raises:
            UnknownSaga: No saga has that id.
            JournalCorrupt: A finished saga's events do not decode (nothing waits for it; an
                in-flight one is quarantined instead).
        """
        known = self.get(saga_id)
        if known is not None:
            return quarantined_outcome(known)
        records = journal.read(saga_stream(saga_id))
        if not records:
            raise UnknownSaga(saga_id)
        try:
            return summarize(saga_id, decode_saga_events(journal, records)).outcome()
        except JournalCorrupt as error:
            if records[-1].final:
                raise
            quarantined = SagaQuarantined(saga_id, saga_name(records), error)
            return quarantined_outcome(self.add(quarantined))

    def check_known(self, journal: Journal, saga_id: str) -> None:
        """Raise :class:`UnknownSaga` unless a saga has that id (quarantined, or its stream
        has records): one indexed lookup, no fold."""
        if self.get(saga_id) is None and not journal.last_seq(saga_stream(saga_id)):
            raise UnknownSaga(saga_id)

    def get(self, saga_id: str) -> SagaQuarantined | None:
        with self._lock:
            return self._errors.get(saga_id)

    def errors(self) -> dict[str, SagaQuarantined]:
        with self._lock:
            return dict(self._errors)


def quarantined_outcome(error: SagaQuarantined) -> Outcome:
    return Outcome(
        saga_id=error.saga_id,
        saga=error.saga,
        status=SagaStatus.QUARANTINED,
        reason=str(error.cause),
    )
