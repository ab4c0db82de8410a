"""The ``sagas`` table: one summary row per saga, derived by the journal from the saga events it
writes, in the same transaction as those events.

Why the journal derives it (and not the saga actor, which knows the state): every writer of a
saga stream (the coordinator, the native dispatcher, an operator's resolve, a test appending
records by hand) keeps the row right without knowing it exists, the upgrade of an old file
backfills the table with the very same fold, and no backend depends on the machine's state
classes. The price is a decode per saga event on the writing thread (a few microseconds: see
``bench/bench_codec.py``) and, for a saga the journal has not seen since it opened, one read
of its stream.

The fold is :class:`~sagactor.sagas.fold.Summary`, the definition-free reader every other view
of a saga uses, so the row says what ``status``, ``history`` and the playground say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgspec

from ..codec import decode_event
from ..messages import SagaCancelled, SagaEvent, SagaStarted, SagaStatus
from ..names import SAGA_PREFIX
from ..sagas.fold import Summary
from ..sagas.state import Seldom


class StoredRecord(Protocol):
    """What the fold reads of a journal record (the journal's ``Record``, which imports this
    module for its contract, so it is named here by its shape)."""

    @property
    def stream(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def ts(self) -> float: ...


__all__ = [
    "CANCELLED",
    "ENDED_STATUSES",
    "ROW_STATUSES",
    "SUMMARY_VERSION",
    "WRITTEN",
    "SagaQuery",
    "SagaRow",
    "StoredRecord",
    "SummaryKeeper",
    "fold_rows",
    "merge_rows",
    "parse_cursor",
    "saga_ids_of",
    "select",
    "to_prune",
]

SUMMARY_VERSION: Final = 1
"""The version of the ``sagas`` table's columns and meanings (see docs/operations.md)."""
CANCELLED: Final = "cancelled"
ROW_STATUSES: Final = (
    "queued",
    "running",
    "compensating",
    "completed",
    "compensated",
    CANCELLED,
    "stuck",
)
"""What the ``status`` column holds. ``queued``: waiting for a slot under its saga's
``max_in_flight`` (its position: ``Runtime.status``). ``cancelled``: compensated after a cancel (its
compensation was asked for, not caused by a failure); while compensating it shows
``compensating``, and ``stuck`` if that compensation gets stuck."""
ENDED_STATUSES: Final = ("completed", "compensated", CANCELLED)
"""Ended for good: nothing of such a saga runs again (what retention may prune)."""
_MAX_TRACKED: Final = 100_000  # sagas whose fold is kept; past it, start afresh (read again)
# The ``input`` of a row whose saga's first row was written already: that column is set by the
# start and never changes, so the keeper need not keep a copy of it per saga in flight. Never
# the JSON of an input (``null`` at least); backends keep the column's value (merge_rows).
WRITTEN: Final = ""

log = logging.getLogger(__name__)


class SagaRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the ``sagas`` table (summary version :data:`SUMMARY_VERSION`).

    Times are seconds since the epoch (the journal records' ``ts``); ``input`` and ``result``
    are JSON text (``result`` is empty until the saga completed or compensated: the results of
    the steps that succeeded, by step name).
    """

    id: str
    """The saga id (its stream is ``saga/<id>``)."""
    type: str
    """The saga definition's name."""
    version: int
    """The definition's version the saga started with."""
    mode: str
    """``orchestration``, ``choreography`` or ``native``."""
    status: str
    """One of :data:`ROW_STATUSES`."""
    step: str
    """The step (action or compensation) last sent; empty before the first."""
    started: float
    ended: float | None
    """When it completed, compensated or got stuck (``None`` while it runs)."""
    reason: str
    """Why it compensated or got stuck; empty for a completed saga."""
    input: str
    result: str | None
    updated: float
    """The time of the saga's latest event."""
    events: int
    """The saga's events in the journal: its stream's last sequence number, 0 once pruned."""

    @property
    def cursor(self) -> str:
        """Where a listing ordered by this row continues (see ``Runtime.list``)."""
        return f"{self.started!r}:{self.id}"


@dataclass(slots=True)
class _Tracked(Summary):
    """A saga's summary and what its row adds: one object per saga in flight (the keeper's
    key is its stream, so it holds no saga id of its own)."""

    started: float = 0.0
    input: str = "null"
    updated: float = 0.0
    seq: int = 0
    cancelled = Seldom(False)
    ended = Seldom[float | None](None)


def _json(value: Any) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        return msgspec.json.encode(repr(value)).decode()  # what JSON cannot say, as text


class SummaryKeeper:
    """Folds saga records into rows, remembering each saga's fold between appends.

    ``load(stream, before)`` returns a stream's stored records with ``seq < before``: how a
    saga the keeper does not remember (evicted, or written before the journal was opened) is
    read again. The caller evicts what a failed write touched (:meth:`forget`).
    """

    def __init__(
        self,
        load: Callable[[str, int], Sequence[StoredRecord]],
        load_many: Callable[[list[str]], Mapping[str, Sequence[StoredRecord]]] | None = None,
    ) -> None:
        self._load = load
        # Every record of many streams in one read: a batch touching many sagas not
        # remembered (recovery's RecoveryAttempted marks, one per in-flight saga).
        self._load_many = load_many
        self._tracked: dict[str, _Tracked] = {}  # by stream: the writer keeps that string too

    def rows(self, records: Sequence[StoredRecord], now: float) -> dict[str, SagaRow]:
        """The new row of each saga ``records`` (a batch, in order) write to."""
        touched: dict[str, _Tracked] = {}
        preloaded = self._preload(records)
        for record in records:
            stream = record.stream
            if not stream.startswith(SAGA_PREFIX):
                continue
            tracked = touched.get(stream) or self._tracked.get(stream)
            if tracked is None or tracked.seq != record.seq - 1:
                # A new saga starts afresh; one not remembered is read again.
                stored: Sequence[StoredRecord] = ()
                if record.seq > 1:
                    early = preloaded.get(stream)
                    stored = (
                        [r for r in early if r.seq < record.seq]
                        if early is not None
                        else self._load(stream, record.seq)
                    )
                tracked = _fold(stored)
            _apply(tracked, record, now)
            touched[stream] = tracked
        if len(self._tracked) > _MAX_TRACKED:
            self._tracked.clear()
        for stream, tracked in touched.items():
            if tracked.ended is not None and tracked.status is not SagaStatus.STUCK:
                self._tracked.pop(stream, None)  # ended for good: rarely written again
            else:
                self._tracked[stream] = tracked
        rows = {
            saga_id: _row(saga_id, tracked)
            for stream, tracked in touched.items()
            for saga_id in (stream[len(SAGA_PREFIX) :],)
        }
        for tracked in touched.values():
            tracked.input = WRITTEN  # the row above carries it; a failed write forgets us
        return rows

    def _preload(self, records: Sequence[StoredRecord]) -> Mapping[str, Sequence[StoredRecord]]:
        if self._load_many is None or len(records) < 2:
            return {}
        wanted: dict[str, None] = {}
        seen: set[str] = set()
        for record in records:
            stream = record.stream
            if stream in seen or not stream.startswith(SAGA_PREFIX):
                continue
            seen.add(stream)
            tracked = self._tracked.get(stream)
            if record.seq > 1 and (tracked is None or tracked.seq != record.seq - 1):
                wanted[stream] = None
        return self._load_many(list(wanted)) if len(wanted) > 1 else {}

    def forget(self, saga_ids: Iterable[str] | None = None) -> None:
        """Drop what is remembered (of ``saga_ids``, or all): it is read again when needed."""
        if saga_ids is None:
            self._tracked.clear()
        else:
            for saga_id in saga_ids:
                self._tracked.pop(SAGA_PREFIX + saga_id, None)


def merge_rows(into: dict[str, SagaRow], rows: Mapping[str, SagaRow]) -> None:
    """Put ``rows`` into ``into`` (by saga id): a row with a :data:`WRITTEN` input takes the
    input of the row it replaces (one earlier in the same group, or the stored one)."""
    for saga_id, row in rows.items():
        earlier = into.get(saga_id)
        if row.input == WRITTEN and earlier is not None:
            row = msgspec.structs.replace(row, input=earlier.input)
        into[saga_id] = row


def _fold(records: Sequence[StoredRecord]) -> _Tracked:
    tracked = _Tracked("")  # its id is its stream's: the keeper's key
    for record in records:
        _apply(tracked, record, record.ts)
    return tracked


def saga_ids_of(records: Iterable[StoredRecord]) -> set[str]:
    return {r.stream[len(SAGA_PREFIX) :] for r in records if r.stream.startswith(SAGA_PREFIX)}


def fold_rows(records: Iterable[StoredRecord]) -> Iterable[SagaRow]:
    """Rows of every saga in ``records`` (sorted by stream, then seq): the backfill."""
    current: str | None = None
    tracked = _Tracked("")
    for record in records:
        if not record.stream.startswith(SAGA_PREFIX):
            continue
        if record.stream != current:
            if current is not None:
                yield _row(current[len(SAGA_PREFIX) :], tracked)
            current = record.stream
            tracked = _Tracked(current[len(SAGA_PREFIX) :])
        _apply(tracked, record, record.ts)
    if current is not None:
        yield _row(current[len(SAGA_PREFIX) :], tracked)


def _apply(tracked: _Tracked, record: StoredRecord, now: float) -> None:
    ts = record.ts or now
    tracked.seq, tracked.updated = record.seq, ts
    try:
        event: SagaEvent = decode_event(record.data)
    except msgspec.DecodeError as error:
        # Never fail a write for its summary: the row says the stream cannot be read.
        tracked.reason = f"record {record.seq} ({record.type}) cannot be decoded: {error}"
        log.warning("%s: %s", record.stream, tracked.reason)
        return
    if isinstance(event, SagaStarted):
        tracked.started = ts
        try:
            tracked.input = _json(msgspec.msgpack.decode(event.input))
        except msgspec.DecodeError:
            tracked.input = "null"
    elif isinstance(event, SagaCancelled):
        tracked.cancelled = True
    tracked.apply(event)
    tracked.digest = ""  # no column of the row: not kept per saga in flight
    tracked.ended = ts if tracked.status.terminal else None


def _row(saga_id: str, tracked: _Tracked) -> SagaRow:
    summary = tracked
    status = str(summary.status)
    result: str | None = None
    if summary.status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED):
        try:
            result = _json(summary.outcome().results)
        except msgspec.DecodeError:
            result = None
        if summary.status is SagaStatus.COMPENSATED and tracked.cancelled:
            status = CANCELLED
    return SagaRow(
        id=saga_id,
        type=summary.saga,
        version=summary.version,
        mode=summary.mode,
        status=status,
        step=summary.step,
        started=tracked.started,
        ended=tracked.ended,
        reason=summary.reason,
        input=tracked.input,
        result=result,
        updated=tracked.updated,
        events=tracked.seq,
    )


@dataclass(frozen=True, slots=True)
class SagaQuery:
    """Which rows a listing wants, newest first (by ``started``, then id).

    ``after`` is a cursor (:attr:`SagaRow.cursor`): the rows strictly older than that row.
    ``ids`` restricts the listing to those sagas (quarantined ones, for instance).
    """

    statuses: tuple[str, ...] = ()
    saga: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    after: tuple[float, str] | None = None
    ids: tuple[str, ...] | None = None

    def matches(self, row: SagaRow) -> bool:
        """The filter, in Python: what the SQL of a backend says (the reference for tests)."""
        return (
            (not self.statuses or row.status in self.statuses)
            and (self.saga is None or row.type == self.saga)
            and (self.since is None or row.started >= self.since)
            and (self.until is None or row.started < self.until)
            and (self.after is None or (row.started, row.id) < self.after)
            and (self.ids is None or row.id in self.ids)
        )


def select(rows: Iterable[SagaRow], query: SagaQuery) -> list[SagaRow]:
    """``rows`` that ``query`` wants, newest first, at most ``query.limit``."""
    chosen = sorted(
        (r for r in rows if query.matches(r)), key=lambda r: (r.started, r.id), reverse=True
    )
    return chosen[: query.limit]


def parse_cursor(cursor: str) -> tuple[float, str]:
    """The (started, id) a :attr:`SagaRow.cursor` names; ValueError if it names none."""
    started, colon, saga_id = cursor.partition(":")
    if not colon:
        raise ValueError(f"not a cursor: {cursor!r}")
    return float(started), saga_id


def to_prune(rows: Iterable[SagaRow], before: float, keep: int) -> list[str]:
    """Ids of the ended sagas that ended before ``before``, sparing the ``keep`` that ended
    last (the reference for backends' SQL)."""
    ended = sorted(
        (r for r in rows if r.status in ENDED_STATUSES and r.ended is not None and r.events),
        key=lambda r: (r.ended or 0.0, r.id),
        reverse=True,
    )
    return [r.id for r in ended[keep:] if (r.ended or 0.0) < before]
