"""The runtime: participants, sagas and the journal put together behind one small API.

:class:`Runtime` is the sync face, and the entry to the async one (``astart``, ``watch``...,
see :mod:`sagactor.aio`); both work on one :class:`~sagactor.engine.Engine`, through its public
methods. What it holds (actors, outcomes, quarantine) is the engine's; here are the ways in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from . import cluster, inspection, signals
from .actors import garbage
from .actors.kinds import ActorKinds
from .actors.participant import Participant
from .async_face import AsyncFace
from .crashpoints import CrashPlan
from .dead_letters import DEFAULT_MAX_RECOVERY_ATTEMPTS
from .drills import Drills
from .engine import Engine
from .errors import RuntimeClosed, SagaQuarantined
from .handles import SagaRun, StartOne, start_nowait, start_runs
from .history import HistoryEntry
from .messages import Outcome
from .names import Durability, Mode
from .observe import Footprint, Listener, RecoveryCallback
from .operations import Operations
from .persistence.journal import Journal
from .persistence.memory import MemoryJournal
from .persistence.opening import discarding, open_journal
from .recovering import BACKGROUND, Recover, check_recover
from .retention import Retention
from .sagas.definition import Choreography, Saga
from .sagas.versions import Definitions

__all__ = ["Footprint", "HistoryEntry", "Mode", "Runtime", "SagaRun"]


class Runtime(Operations, Drills, cluster.Clustered, AsyncFace, StartOne):
    """Runs sagas over registered participants, journaling everything they do.

    Open one with :meth:`open` (a durable SQLite journal) or :meth:`in_memory`; use it as a
    context manager so it closes.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        participants: Iterable[Participant[Any]] = (),
        sagas: Iterable[Saga | Choreography] = (),
        recover: Recover = True,
        snapshot_every: int = 1000,
        check_state: bool | None = None,
        listeners: Iterable[Listener] = (),
        max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
        durability: Durability = "full",
        kinds: ActorKinds | None = None,
    ) -> None:
        check_recover(recover)
        self._engine = Engine(
            journal,
            snapshot_every=snapshot_every,
            check_state=check_state,
            listeners=listeners,
            max_recovery_attempts=max_recovery_attempts,
            durability=durability,
            kinds=kinds,
        )
        try:
            self.register(*participants)
            self.define(*sagas)
            if recover == BACKGROUND:
                self._engine.recover_in_background()
            elif recover:
                self.recover(recover if callable(recover) else None)
        except BaseException:
            self.close()
            raise
        garbage.tune()  # after start-up: see sagactor.actors.garbage (SAGACTOR_TUNE_GC=0: off)

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["full", "normal"] = "full",
        create: bool = True,
        participants: Iterable[Participant[Any]] = (),
        sagas: Iterable[Saga | Choreography] = (),
        recover: Recover = True,
        snapshot_every: int = 1000,
        check_state: bool | None = None,
        listeners: Iterable[Listener] = (),
        retention: Retention | None = None,
        max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
        durability: Durability = "full",
        standby: bool = False,
        lease: float = 10.0,
    ) -> Runtime:
        """A runtime over the journal at ``path``; in-flight sagas are resumed.

        ``path`` is a SQLite file, or a PostgreSQL URL (``postgresql://...``, with the
        ``postgres`` extra; see the PostgreSQL page). ``create=False`` refuses a journal that
        does not exist yet (a missing or empty file, a database without sagactor's tables).

        ``check_state=True`` (the default under ``sagactor.testing.check_state()``) makes a
        handler that changes its participant's state without ``ctx.record`` fail its step with
        :class:`UnrecordedChange`: a mode for tests, it costs a state copy per handler.
        ``retention`` prunes ended sagas in the background (see :class:`Retention`).
        ``max_recovery_attempts``: a saga that this many recoveries in a row resumed without
        it making progress (its handling kills the process: a poison saga) is parked as a
        dead letter instead of resumed again (see :meth:`dead_letters`); None never parks.
        ``durability="relaxed"`` waits for the disk only at a saga's start and end; a crash can
        then lose the steps in between, and leave an external effect of a later step
        uncompensated (read "Durability" in the operations docs before choosing it).
        ``standby`` and ``lease``: several runtimes on one PostgreSQL journal, see :attr:`role`.
        ``recover`` may be a callable: it is given a :class:`RecoveryProgress` as it goes;
        ``"background"`` returns at once and resumes on a thread (see :meth:`wait_recovered`).
        """
        participants, sagas, listeners = list(participants), list(sagas), list(listeners)
        journal = open_journal(
            path, synchronous=synchronous, create=create, standby=standby, lease=lease
        )
        member = cluster.membership(journal, participants, sagas, listeners)
        options: dict[str, Any] = {
            "snapshot_every": snapshot_every,
            "check_state": check_state,
            "max_recovery_attempts": max_recovery_attempts,
            "durability": durability,
        }
        with discarding(journal):
            runtime = cls(
                member.engine_journal if member is not None else journal,
                participants=participants,
                sagas=sagas,
                recover=recover if member is None or not member.standby else False,
                listeners=listeners,
                **options,
            )
        runtime.join(member, options, retention)
        return runtime

    @classmethod
    def in_memory(
        cls,
        *,
        journal: MemoryJournal | None = None,
        participants: Iterable[Participant[Any]] = (),
        sagas: Iterable[Saga | Choreography] = (),
        recover: Recover = True,
        snapshot_every: int = 1000,
        check_state: bool | None = None,
        listeners: Iterable[Listener] = (),
        max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
        kinds: ActorKinds | None = None,
    ) -> Runtime:
        """A runtime whose journal lives in memory: fast, gone with the process. Pass the
        ``journal`` of a crashed in-memory runtime to recover from it.
        ``kinds=SimulatedKinds(seed)`` (``sagactor.testing``) runs it as a simulation (see
        :func:`sagactor.testing.simulate`).
        """
        return cls(
            journal if journal is not None else MemoryJournal(),
            participants=participants,
            sagas=sagas,
            recover=recover,
            snapshot_every=snapshot_every,
            check_state=check_state,
            listeners=listeners,
            max_recovery_attempts=max_recovery_attempts,
            kinds=kinds,
        )

    @property
    def journal(self) -> Journal:
        return self._engine.journal

    @property
    def engine(self) -> Engine:
        """The core this runtime's sync and async faces share (for sagactor's own faces)."""
        return self._engine

    @property
    def crash_plan(self) -> CrashPlan:
        return self._engine.crash_plan

    # -- registration --------------------------------------------------------------------------

    def register(self, *participants: Participant[Any]) -> None:
        """Host each participant in its own actor; its state is rebuilt from the journal."""
        self._engine.check_open()
        self._engine.catalog.register(*participants)

    def define(self, *sagas: Saga | Choreography) -> None:
        """Check each definition against the registered participants and remember it.

        A :class:`Choreography` is checked as a workflow graph (unhandled events, work without
        a compensation path, cycles): every problem found is listed in one DefinitionError.
        """
        self._engine.catalog.define(*sagas)

    # -- running sagas -------------------------------------------------------------------------

    def start_many(
        self,
        saga: Saga | Choreography | str,
        inputs: Sequence[Any],
        *,
        saga_ids: Sequence[str] | None = None,
        mode: Mode = "orchestration",
        priority: int = 0,
    ) -> list[SagaRun]:
        """Start many sagas (one run per input); returns once all are durable, after one wait."""
        if self.role == "standby":
            return self.forward(saga, inputs, saga_ids, mode)
        return start_runs(self, saga, inputs, saga_ids, mode, priority)

    def start_nowait(
        self,
        saga: Saga | Choreography | str,
        input: Any,
        *,
        mode: Mode = "orchestration",
    ) -> SagaRun:
        """:meth:`start` without waiting for the disk: returns at once with the new saga's id;
        a start that cannot be journaled raises from ``run.result()``. No ``saga_id`` here: an
        idempotency key is checked against the journal, which takes a wait."""
        if self.role == "standby":
            return self.forward(saga, [input], None, mode)[0]
        return start_nowait(self, saga, input, mode)

    def run(self, saga_id: str) -> SagaRun:
        """A handle on a saga started earlier (by this runtime or before a restart).

        Raises :class:`UnknownSaga` for an id no saga has: one indexed lookup, not a load of the
        saga (waiting on its outcome loads it; so waiting on many recovered sagas loads each
        once, not twice).
        """
        engine = self._engine
        try:
            engine.quarantine.check_known(engine.journal, saga_id)
        except RuntimeClosed:
            engine.check_open()  # a crash released the journal: say that it crashed
            raise
        return self.remote_run(saga_id) if self.role == "standby" else SagaRun(self, saga_id)

    def status(self, saga_id: str) -> Outcome:
        """Where the saga stands now (its outcome if it ended), as its journal says.

        A saga that finished under an older or removed definition stays readable (from its own
        events, results then untyped). A quarantined saga's status is ``quarantined``, its
        reason the error that keeps it from loading.
        """
        return self._engine.status(saga_id)

    def cancel(self, saga_id: str, reason: str = "cancelled") -> None:
        """Stop a running saga: it compensates what it did (a saga that ended keeps its outcome).

        A native :class:`Choreography` needs a ``cancel`` event (its subscribers undo their
        work); without one this raises :class:`DefinitionError`. A natively choreographed saga
        past its point of no return completes: the cancel is then dropped with a warning.
        Raises :class:`SagaQuarantined` for a quarantined saga (retry it first).
        """
        cluster.require_active(self._engine, "cancel")
        self._engine.cancel(saga_id, reason)

    def signal(
        self, saga_id: str, name: str, payload: Any = None, *, signal_id: str | None = None
    ) -> bool:
        """Deliver signal ``name`` (``payload`` becomes ``ctx.results[name]``) to a saga's
        ``WaitFor(name)`` step, durably: one sent before the saga reaches the wait is kept.
        A ``signal_id`` the saga already journaled is ignored: returns False (True: delivered).
        Raises :class:`UnknownSaga`, or :class:`SignalRefused` when the saga has ended or is
        compensating, waits for no such signal, or the payload does not fit ``WaitFor(type=)``.
        """
        cluster.require_active(self._engine, "signal")
        return signals.signal(self._engine, saga_id, name, payload, signal_id)

    def resume(self, saga_id: str) -> None:
        """Retry what left a saga stuck (after fixing its cause): the failed compensation, or
        in native choreography the reaction that failed. Other sagas are left as they are.
        Raises :class:`SagaQuarantined` for a quarantined saga, and the error that keeps a
        stuck saga from loading (its definition removed, say) rather than ignore the resume.
        """
        cluster.require_active(self._engine, "resume")
        self._engine.resume(saga_id)

    def recover(self, progress: RecoveryCallback | None = None) -> list[str]:
        """Resume every in-flight saga of the journal; returns their ids. ``progress`` is
        given a :class:`RecoveryProgress` each 1,000 sagas loaded, and at the end.

        A saga that cannot be loaded (its definition unknown or of another version, its input
        or events undecodable) is quarantined instead, never stopping the others: see
        :meth:`quarantined` and :meth:`retry_quarantined`.
        """
        return self._engine.recover(progress)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with a :class:`SagaNotice` for every durable saga event (and a
        :class:`RecoveryNotice` per recovery); returns the call that stops it.

        Listeners run on the runtime's thread, in journal order per saga, once the event is
        durable and before anyone waiting for the saga's outcome is woken: keep them quick
        (count, time, hand off). One that raises is logged and skipped.
        """
        return self._engine.listen(listener)

    def quarantined(self) -> dict[str, SagaQuarantined]:
        """The quarantined sagas by id, each with the error that keeps it from loading."""
        return self._engine.quarantine.errors()

    def retry_quarantined(self, saga_id: str) -> SagaRun:
        """Load a quarantined saga again (after fixing its cause) and resume it.

        Raises :class:`SagaQuarantined` if it still cannot load (it stays quarantined), and
        :class:`UnknownSaga` for an unknown id. A saga that is not quarantined is left as it is.
        """
        cluster.require_active(self._engine, "retry_quarantined")
        self._engine.retry_quarantined(saga_id)
        return SagaRun(self, saga_id)

    def dead_letters(self) -> dict[str, Outcome]:
        """The dead letters by id: sagas parked after ``max_recovery_attempts`` recoveries in a
        row saw them make no progress, each with why (status ``dead``). Reads every saga's
        last record: an operator's call, not a hot path."""
        return self._engine.dead_letters.listing(self.journal)

    def retry_dead(self, saga_id: str) -> SagaRun:
        """Bring a dead letter back (after fixing what killed the process) and resume it; its
        recovery count starts again.

        Raises :class:`UnknownSaga` for an unknown id and the error that keeps it from
        loading (its definition removed, say). A saga that is not dead is left as it is.
        """
        cluster.require_active(self._engine, "retry_dead")
        self._engine.retry_dead(saga_id)
        return SagaRun(self, saga_id)

    # -- looking inside ------------------------------------------------------------------------

    def history(self, saga_id: str) -> list[HistoryEntry]:
        """The saga's events across the coordinator and every participant, in journal order.

        Costs the saga's own records, whatever the journal's size. Entries are JSON-ready:
        payloads (input, results, published events) are decoded to their declared types.
        """
        return self._engine.history(saga_id)

    def footprint(self) -> Footprint:
        """What this runtime holds in memory and snapshots now: bounded by live work."""
        return inspection.footprint(self._engine)

    def state(self, participant: str) -> Any:
        """A copy of a participant's current state (on the active runtime)."""
        cluster.require_active(self._engine, "state")
        return inspection.participant_state(self._engine, participant)

    @property
    def participants(self) -> list[str]:
        return sorted(self._engine.catalog.refs)

    @property
    def definitions(self) -> Definitions:
        """The registered definitions (a copy): by name, the latest version of each (what a
        start by name runs); ``.every()`` lists every version, ``.exact(name, version)`` finds
        one."""
        return self._engine.catalog.definitions.copy()

    def saga_ids(self) -> list[str]:
        return inspection.saga_ids(self._engine)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the actors and close the journal. In-flight sagas resume at the next open."""
        self.leave(lambda: self._engine.shutdown(None))

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
