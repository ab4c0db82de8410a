"""Reading a journal without a runtime: saga summaries, typed records, the journal's tail.

Everything here works on a :class:`~sagactor.persistence.journal.Journal` alone, so
``sagactor inspect`` can describe a file without starting any participant, and the playground
can list thousands of sagas without asking the actors.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..actors.inbox import HANDLED
from ..codec import decode_event
from ..errors import JournalCorrupt
from ..history import HistoryEntry
from ..messages import (
    SAGA_EVENTS,
    Handled,
    SagaCancelled,
    SagaCompensated,
    SagaCompleted,
    SagaDead,
    SagaOverdue,
    SagaResumed,
    SagaRevived,
    SagaStarted,
    SagaStatus,
    SagaStuck,
    SleepStarted,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    WaitStarted,
)
from ..names import SAGA_PREFIX, saga_id_of, saga_stream
from ..persistence.journal import Journal, Record
from ..persistence.recovery import decode_saga_events
from ..sagas.fold import Summary

__all__ = [
    "SAGA_EVENT_TYPES",
    "Dispatched",
    "SagaSummary",
    "decode_record",
    "last_records",
    "mark_dispatched",
    "summarize",
    "summarize_events",
    "summarize_saga",
]

_handled_decoder = msgspec.msgpack.Decoder(Handled)
SAGA_EVENT_TYPES = tuple(SAGA_EVENTS.values())


@dataclass(slots=True)
class SagaSummary:
    """What a saga's own stream says about it: status, timings, where it stands."""

    saga_id: str
    saga: str = "?"
    version: int = 0
    mode: str = "?"
    status: SagaStatus = SagaStatus.RUNNING
    started: float = 0.0
    ended: float = 0.0
    """Wall-clock time of the terminal event; 0 while the saga is in flight."""
    first_position: int = 0
    events: int = 0
    step: str = ""
    kind: str = ""
    attempt: int = 0
    retry_due: float = 0.0
    reason: str = ""
    last_error: str = ""
    done: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    """How long each succeeded step's action took (its last attempt's start to success)."""
    last_event: str = ""
    """Native choreography: the last event dispatched, and who published it."""
    pause: str = ""
    """What a running saga waits for at a ``Sleep`` or ``WaitFor`` step ("" otherwise)."""

    @property
    def finished(self) -> bool:
        return self.status.terminal

    @property
    def latency(self) -> float | None:
        """Seconds from start to the terminal event (None while in flight)."""
        return self.ended - self.started if self.ended else None

    def where(self) -> str:
        """Why an unfinished (or stuck) saga is where it is, in one line."""
        if self.status is SagaStatus.QUARANTINED:
            return f"quarantined: {self.reason}"
        if self.status is SagaStatus.STUCK:
            detail = f"; last error {self.last_error}" if self.last_error else ""
            return f"stuck: {self.reason}{detail}"
        if self.status.terminal:
            return self.reason
        if self.status is SagaStatus.QUEUED:
            return "queued: waiting for a slot under its saga's max_in_flight"
        if self.pause and self.status is SagaStatus.RUNNING:
            return self.pause
        what = "compensation of" if self.kind == "compensation" else "step"
        if self.mode == "native":
            if not self.last_event:
                return "started, no event dispatched yet"
            return f"in flight: last event {self.last_event}, no end event yet"
        if not self.step:
            return "started, no step sent yet"
        if self.retry_due:
            return (
                f"waiting to retry {what} {self.step} (attempt {self.attempt + 1}) "
                f"after {self.last_error}"
            )
        return f"in flight: {what} {self.step} (attempt {self.attempt}) sent, no answer recorded"


def summarize_events(saga_id: str, timed: Iterable[tuple[float, Any]]) -> SagaSummary:
    """Fold a saga's ``(timestamp, event)`` pairs into a summary. Pure.

    Where the saga stands comes from the one definition-free fold of its stream
    (:class:`~sagactor.sagas.fold.Summary`); this adds only the times. Events that are not saga
    events (a participant's records, say) are skipped, so a whole
    :meth:`~sagactor.Runtime.history` can be folded as it is.
    """
    fold = Summary(saga_id)
    summary = SagaSummary(saga_id)
    step_started: dict[str, float] = {}
    for ts, event in timed:
        if not isinstance(event, SAGA_EVENT_TYPES):
            continue
        summary.events += 1
        fold.apply(event)
        if isinstance(event, SagaStarted):
            summary.started = ts
        elif isinstance(event, StepStarted):
            step_started[event.step] = ts
        elif isinstance(event, StepSucceeded) and event.step in step_started:
            summary.step_seconds[event.step] = ts - step_started[event.step]
        elif isinstance(event, SagaResumed | SagaRevived):
            summary.ended = 0.0
        elif isinstance(event, SagaCompleted | SagaCompensated | SagaStuck | SagaDead):
            summary.ended = ts
        summary.pause = _pause(event, summary.pause)
    if fold.saga:
        summary.saga, summary.version, summary.mode = fold.saga, fold.version, fold.mode
    summary.status, summary.reason, summary.last_error = fold.status, fold.reason, fold.last_error
    summary.step, summary.kind, summary.attempt = fold.step, fold.kind, fold.attempt
    summary.retry_due, summary.last_event = fold.retry_due, fold.last_event
    summary.done, summary.compensated = fold.done, fold.compensated
    return summary


def _pause(event: Any, pause: str) -> str:
    """What the saga waits for after ``event`` at a sleep or a wait, said the way its status
    says it."""
    if isinstance(event, SleepStarted | WaitStarted):
        when = datetime.datetime.fromtimestamp(event.due, datetime.UTC).isoformat(
            timespec="seconds"
        )
        if isinstance(event, SleepStarted):
            return f"sleeping until {when}"
        return f"waiting for {event.signal!r}" + (f" until {when}" if event.due else "")
    if isinstance(event, StepSucceeded | StepRetrying | StepStarted | SagaCancelled | SagaOverdue):
        return ""  # the step ended, or is retried, or the saga turned back
    return pause


@dataclass(frozen=True, slots=True)
class Dispatched:
    """A native choreography event in a history: ``event`` as its publisher published it."""

    event: Any


def mark_dispatched(
    entries: Sequence[HistoryEntry], saga_positions: Collection[int]
) -> list[HistoryEntry]:
    """``entries`` with each dispatched event (a record of the saga's own stream that is not a
    saga event) wrapped in :class:`Dispatched`, so it reads apart from a participant's change.
    ``saga_positions`` are the positions of the saga stream's records."""
    return [
        dataclasses.replace(e, event=Dispatched(e.event))
        if e.position in saga_positions and not isinstance(e.event, SAGA_EVENT_TYPES)
        else e
        for e in entries
    ]


def _groups(records: Iterable[Record]) -> Iterator[list[Record]]:
    group: list[Record] = []
    for record in records:
        if group and record.stream != group[0].stream:
            yield group
            group = []
        group.append(record)
    if group:
        yield group


def summarize(
    journal: Journal, quarantined: Mapping[str, BaseException] | None = None
) -> list[SagaSummary]:
    """Every saga of the journal, in the order they were started.

    ``quarantined`` (a runtime's :meth:`~sagactor.Runtime.quarantined`) marks those sagas
    quarantined, with their errors; a saga whose events do not decode is shown so too.
    """
    summaries = [_summary(journal, group) for group in _groups(journal.read_prefix(SAGA_PREFIX))]
    summaries.sort(key=lambda s: s.first_position)
    for summary in summaries:
        error = (quarantined or {}).get(summary.saga_id)
        if error is not None:
            summary.status = SagaStatus.QUARANTINED
            summary.reason = str(getattr(error, "cause", error))
    return summaries


def summarize_saga(journal: Journal, saga_id: str) -> SagaSummary | None:
    records = journal.read(saga_stream(saga_id))
    return _summary(journal, records) if records else None


def _summary(journal: Journal, records: list[Record]) -> SagaSummary:
    timed: list[tuple[float, Any]] = []
    damaged: JournalCorrupt | None = None
    for record in records:
        try:
            timed += [(record.ts, e) for e in decode_saga_events(journal, [record])]
        except JournalCorrupt as error:  # one unreadable saga must not hide the others
            damaged = error
            break
    summary = summarize_events(saga_id_of(records[0].stream) or "", timed)
    if damaged is not None:
        summary.status, summary.reason = SagaStatus.QUARANTINED, str(damaged)
    summary.first_position = records[0].position
    return summary


def decode_record(record: Record) -> Any:
    """A record's event: typed for saga events and inbox records, plain data otherwise."""
    try:
        if saga_id_of(record.stream) is not None:
            return decode_event(record.data)
        if record.type == HANDLED:
            return _handled_decoder.decode(record.data)
        return msgspec.msgpack.decode(record.data)
    except msgspec.DecodeError:
        return record.data


def last_records(journal: Journal, n: int) -> list[Record]:
    """The journal's last ``n`` records in global order, without reading the whole journal."""
    if n <= 0 or not journal.read_all(after=0, limit=1):
        return []
    # Invariant: a record exists after ``low``; none exists after ``high``.
    low, high = 0, 1
    while journal.read_all(after=high, limit=1):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if journal.read_all(after=middle, limit=1):
            low = middle
        else:
            high = middle
    after = max(0, high - n)
    records = journal.read_all(after=after)
    while len(records) < n and after > 0:  # positions may have gaps
        after = max(0, after - n)
        records = journal.read_all(after=after)
    return records[-n:]
