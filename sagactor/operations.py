"""Operating sagas: find them (:meth:`~Operations.list`, :meth:`~Operations.counts`), fix them
(:meth:`~Operations.resolve`, :meth:`~Operations.restart`) and forget them
(:meth:`~Operations.prune`, the ``retention`` setting), from the journal's ``sagas`` table.

:class:`Operations` is a base of :class:`~sagactor.Runtime`: these methods are the runtime's,
kept in a module of their own. Listings come from the table's indexes, never a journal scan;
quarantine lives in memory (a saga that cannot be loaded), so it is laid over the rows.
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import anyio.to_thread
import msgspec

from . import clock, forks
from .actor_messages import Resolve
from .cluster.view import require_active
from .codec import encode_event
from .errors import OperationRefused, UnknownSaga
from .messages import FINAL_EVENTS, event_name
from .names import saga_stream
from .persistence.journal import Journal, Record
from .persistence.recovery import load_saga
from .persistence.summaries import (
    ROW_STATUSES,
    SagaQuery,
    SagaRow,
    parse_cursor,
)
from .retention import PruneReport, Retention, RetentionThread, prune_journal
from .sagas.definition import Choreography, Saga
from .sagas.machine import SagaState, decide

if TYPE_CHECKING:
    from .engine import Engine
    from .handles import SagaRun

__all__ = [
    "STATUSES",
    "Operations",
    "SagaPage",
    "resolve_offline",
]

QUARANTINED: Final = "quarantined"
STATUSES: Final = (*ROW_STATUSES, QUARANTINED)
"""What :meth:`Operations.list` filters on: the table's statuses, and ``quarantined``."""
Moment = float | datetime
log = logging.getLogger("sagactor")


@dataclass(frozen=True, slots=True)
class SagaPage:
    """One page of a listing: ``rows`` newest first, and the ``cursor`` of the next page
    (``None`` when this was the last one)."""

    rows: list[SagaRow]
    cursor: str | None


def _moment(name: str, value: Moment | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return None if value is None else float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    raise OperationRefused("list", f"{name} must be a datetime or epoch seconds, not {value!r}")


def _statuses(status: str | Iterable[str] | None) -> tuple[str, ...]:
    chosen = (status,) if isinstance(status, str) else tuple(status or ())
    unknown = [s for s in chosen if s not in STATUSES]
    if unknown:
        raise OperationRefused(
            "list", f"unknown status {', '.join(map(repr, unknown))}; one of {', '.join(STATUSES)}"
        )
    return chosen


class Operations:
    """The operator's methods of :class:`~sagactor.Runtime` (see the module's doc)."""

    _engine: Engine

    def wait_recovered(self, timeout: float | None = None) -> list[str]:
        """Wait for a background recovery (``recover="background"``) to be done; the ids of
        the sagas it resumed (at once, and empty, when none ran).

        Raises:
            RecoveryPending: It is not done within ``timeout`` seconds.
            SagactorError: What stopped it (the runtime crashed or closed, a journal error).
        """
        return self._engine.recovery.wait(timeout)

    # -- find ------------------------------------------------------------------------------------

    def list(
        self,
        status: str | Iterable[str] | None = None,
        *,
        saga: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> SagaPage:
        """Sagas newest first (by start), from the journal's ``sagas`` table and its indexes.

        Args:
            status: One status or several (:data:`STATUSES`); all when ``None``.
            saga: Only sagas of this definition name.
            since: Only sagas started at or after this moment (datetime or epoch seconds).
            until: Only sagas started before this moment.
            limit: Rows per page (1 to 10,000).
            after: The ``cursor`` of the previous page.

        Raises:
            OperationRefused: An unknown status, a bad cursor, a limit out of range.
        """
        return _list(self._engine, status, saga, since, until, limit, after)

    def counts(self) -> dict[str, int]:
        """How many sagas have each status (quarantined ones counted as ``quarantined``)."""
        return _counts(self._engine)

    async def alist(
        self,
        status: str | Iterable[str] | None = None,
        *,
        saga: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> SagaPage:
        """:meth:`list` for async callers: the journal is read in a worker thread."""
        return await anyio.to_thread.run_sync(
            lambda: _list(self._engine, status, saga, since, until, limit, after)
        )

    async def acounts(self) -> dict[str, int]:
        """:meth:`counts` for async callers: the journal is read in a worker thread."""
        return await anyio.to_thread.run_sync(_counts, self._engine)

    # -- fix -------------------------------------------------------------------------------------

    def resolve(
        self,
        saga_id: str,
        step: str,
        how: Literal["compensated", "skipped"] = "compensated",
        *,
        note: str = "",
        by: str = "operator",
    ) -> None:
        """Settle a stuck saga's failing compensation of ``step`` by hand, and let the saga go
        on compensating the steps before it.

        ``how="compensated"``: you undid the step yourself (it counts as compensated);
        ``"skipped"``: it is left as it is. The journal records a ``StepResolved`` event with
        ``note`` and ``by`` (shown in :meth:`~sagactor.Runtime.history`). Wait for the new end
        with ``rt.run(saga_id).result()``.

        Raises:
            UnknownSaga: No such saga.
            OperationRefused: The saga is not stuck, ``step`` is not the one whose
                compensation failed, ``how`` is neither value, or it is a native choreography
                (resume those instead).
            NotActive: This runtime is a standby.
        """
        require_active(self._engine, "resolve")
        engine = self._engine
        engine.check_open()
        if how not in ("compensated", "skipped"):
            raise OperationRefused(
                "resolve", f"how must be 'compensated' or 'skipped', not {how!r}"
            )
        outcome = engine.not_quarantined(saga_id)
        if outcome.status != "stuck":
            raise OperationRefused("resolve", f"saga {saga_id!r} is {outcome.status}, not stuck")
        state = engine.load_saga(saga_id)
        if not isinstance(state, SagaState):
            raise OperationRefused(
                "resolve", f"saga {saga_id!r} is a native choreography: resume it instead"
            )
        if not state.stack or state.stack[-1] != step:
            failing = state.stack[-1] if state.stack else "none"
            raise OperationRefused(
                "resolve", f"saga {saga_id!r} is stuck compensating {failing!r}, not {step!r}"
            )
        engine.drive(saga_id, Resolve(saga_id, step, how, note, by))

    def restart(self, saga_id: str, *, from_step: str | None = None) -> SagaRun:
        """Fork an ended (completed, compensated or cancelled) saga: a new saga with the
        original input and mode, whose id is ``<saga_id>~<n>`` (the first free ``n``).

        ``from_step=None`` runs it from its first step. ``from_step="x"`` begins it at step
        ``x`` with the results of the steps before ``x`` carried over (``ctx.results``,
        ``Outcome.results``): each must still stand in the old saga (succeeded, not
        compensated). If the fork fails it compensates only the steps it ran itself; the
        carried ones stay as the old saga left them (see :mod:`sagactor.sagas.forks`). The
        fork's ``SagaStarted`` names its origin (``history``). It runs under the latest
        registered version of the saga's definition.

        Raises:
            UnknownSaga: No such saga.
            OperationRefused: The saga has not ended, its events were pruned, ``from_step`` is
                not one of its steps, is in a parallel group, or a step before it does not
                stand (or names a step of a native choreography).
            NotActive: This runtime is a standby.
        """
        from .handles import SagaRun

        return SagaRun(cast(Any, self), forks.restart(self._engine, saga_id, from_step))

    async def arestart(self, saga_id: str, *, from_step: str | None = None) -> SagaRun:
        """:meth:`restart` for async callers: the journal is read and the fork's start
        journaled in a worker thread; ``await`` the returned run for its outcome."""
        return await anyio.to_thread.run_sync(lambda: self.restart(saga_id, from_step=from_step))

    async def await_recovered(self, timeout: float | None = None) -> builtins.list[str]:
        """:meth:`wait_recovered` for async callers (the wait runs in a worker thread)."""
        return await anyio.to_thread.run_sync(lambda: self.wait_recovered(timeout))

    # -- forget ----------------------------------------------------------------------------------

    def keep_pruning(self, retention: Retention) -> None:
        """Prune under ``retention`` in the background until the runtime closes (what
        ``Runtime.open(..., retention=...)`` calls)."""
        RetentionThread(self._engine.journal, retention)

    def prune(
        self,
        ended_before: Moment | None = None,
        *,
        keep: int = 0,
        keep_summary: bool = True,
        progress: Callable[[int, int], object] | None = None,
    ) -> PruneReport:
        """Delete the events of sagas that ended (completed, compensated, cancelled) before
        ``ended_before`` (default: now), sparing the ``keep`` that ended last, then give the
        space back to the file system.

        A pruned saga keeps its row in the ``sagas`` table (``list``, ``show``) unless
        ``keep_summary=False``; its history is gone, and its id may be started afresh.
        Participant records it caused go too where a participant snapshot covers them (the
        participant's state no longer needs them). Stuck and running sagas are never pruned.

        ``progress(sagas, records)``, if given, is called after each chunk of a long prune.

        Raises:
            OperationRefused: ``keep`` is negative.
        """
        if keep < 0:
            raise OperationRefused("prune", f"keep must be 0 or more, not {keep}")
        before = _moment("ended_before", ended_before)
        moment = clock.now() if before is None else before
        return prune_journal(self._engine.journal, moment, keep, keep_summary, progress)


def _rows(journal: Journal, ids: list[str]) -> list[SagaRow]:
    return journal.sagas(SagaQuery(ids=tuple(ids), limit=len(ids)))


def _list(
    engine: Engine,
    status: str | Iterable[str] | None,
    saga: str | None,
    since: Moment | None,
    until: Moment | None,
    limit: int,
    after: str | None,
) -> SagaPage:
    statuses = _statuses(status)
    if not 1 <= limit <= 10_000:
        raise OperationRefused("list", f"limit must be between 1 and 10000, not {limit}")
    try:
        cursor = None if after is None else parse_cursor(after)
    except ValueError as error:
        raise OperationRefused("list", str(error)) from error
    base = SagaQuery(
        saga=saga,
        since=_moment("since", since),
        until=_moment("until", until),
        limit=limit,
        after=cursor,
    )
    quarantined = engine.quarantine.errors()
    journal = engine.journal
    stored = tuple(s for s in statuses if s != QUARANTINED)
    rows: list[SagaRow] = []
    if not statuses or stored:
        rows = journal.sagas(_with(base, statuses=stored))
    if QUARANTINED in statuses and quarantined:
        rows += journal.sagas(_with(base, ids=tuple(quarantined)))
    rows = sorted({r.id: r for r in rows}.values(), key=lambda r: (r.started, r.id), reverse=True)
    rows = rows[:limit]
    shown = []
    for row in rows:
        why = quarantined.get(row.id)
        if why is not None:
            row = msgspec.structs.replace(row, status=QUARANTINED, reason=str(why))
        if not statuses or row.status in statuses:
            shown.append(row)
    return SagaPage(shown, rows[-1].cursor if len(rows) == limit else None)


def _with(query: SagaQuery, **changes: Any) -> SagaQuery:
    return dataclasses.replace(query, **changes)


def _counts(engine: Engine) -> dict[str, int]:
    counts = engine.journal.saga_counts()
    quarantined = engine.quarantine.errors()
    if quarantined:
        for row in _rows(engine.journal, list(quarantined)):
            counts[row.status] -= 1
            if not counts[row.status]:
                del counts[row.status]
        counts[QUARANTINED] = len(quarantined)
    return counts


def resolve_offline(
    journal: Journal,
    definitions: Mapping[str, Saga | Choreography],
    saga_id: str,
    step: str,
    how: str,
    note: str,
    by: str,
) -> list[str]:
    """:meth:`Operations.resolve` on a journal no runtime holds (``sagactor inspect ...
    resolve``): the machine decides, its events are appended; the runtime that next opens the
    journal recovers the saga and compensates the rest. Returns the event types written."""
    if how not in ("compensated", "skipped"):
        raise OperationRefused("resolve", f"how must be 'compensated' or 'skipped', not {how!r}")
    stream = saga_stream(saga_id)
    records = journal.read(stream)
    if not records:
        raise UnknownSaga(saga_id)
    state = load_saga(journal, saga_id, records, definitions)
    if not isinstance(state, SagaState):
        raise OperationRefused("resolve", f"saga {saga_id!r} is a native choreography")
    if state.status != "stuck":
        raise OperationRefused("resolve", f"saga {saga_id!r} is {state.status}, not stuck")
    events = decide(state, Resolve(saga_id, step, how, note, by), clock.now())
    if not events:
        failing = state.stack[-1] if state.stack else "none"
        raise OperationRefused(
            "resolve", f"saga {saga_id!r} is stuck compensating {failing!r}, not {step!r}"
        )
    now, first, cause = clock.now(), len(records) + 1, f"{saga_id}/resolve"
    names = [event_name(e) for e in events]
    journal.append_and_wait(
        [
            Record(stream, first + i, name, encode_event(e), now, cause, name in FINAL_EVENTS)
            for i, (name, e) in enumerate(zip(names, events, strict=True))
        ]
    )
    return names
