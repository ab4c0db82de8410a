"""The runtime: participants, sagas and the journal put together behind one small API."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, Literal

import msgspec
import pykka

from .actors import statecheck
from .actors.environment import Environment
from .actors.faults import Fault
from .actors.host import GetState, ParticipantHost
from .actors.participant import Participant
from .actors.portal import has_async_handlers
from .actors.timers import TimerService
from .crashpoints import CrashPlan, CrashPoint, SimulatedCrash
from .errors import (
    DefinitionError,
    JournalCorrupt,
    JournalError,
    RuntimeClosed,
    RuntimeCrashed,
    SagactorError,
    SagaQuarantined,
    UnknownParticipant,
)
from .handles import Footprint, HistoryEntry, SagaRun
from .history import Timeline
from .messages import Outcome
from .persistence.journal import Journal
from .persistence.memory import MemoryJournal
from .persistence.recovery import (
    Quarantine,
    find_in_flight,
    load_saga,
    saga_stream,
)
from .sagas.coordinator import Coordinator
from .sagas.definition import Saga
from .sagas.dispatcher import CancelNative, NativeDispatcher
from .sagas.inputs import prepare_input
from .sagas.machine import Cancel, Resume, SagaState
from .sagas.native import Choreography, NativeState
from .sagas.native import check as check_choreography
from .sagas.native import event_types as choreography_types
from .sagas.native_cancel import cancel_plan
from .sagas.outcomes import OutcomeBoard
from .sagas.saga_actor import CountSagas, Recover, StartSaga

__all__ = ["Footprint", "HistoryEntry", "Mode", "Runtime", "SagaRun"]  # handles: see .handles

logger = logging.getLogger("sagactor")

Mode = Literal["orchestration", "choreography"]
_MODES = ("orchestration", "choreography")
_EXIT_GRACE = 10.0  # seconds a runtime left open at exit waits for its running handlers
_OPEN: weakref.WeakSet[Runtime] = weakref.WeakSet()  # closed at interpreter exit


@atexit.register
def _close_forgotten() -> None:
    """A script that forgot ``close()`` still ends, with its journal flushed and released (its
    actors run on daemon threads, so the interpreter reaches this hook)."""
    for runtime in list(_OPEN):
        try:
            runtime._shutdown(_EXIT_GRACE)
        except Exception:
            logger.exception("closing %r at exit failed", runtime)


class Runtime:
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
        recover: bool = True,
        snapshot_every: int = 1000,
        check_state: bool | None = None,
    ) -> None:
        self.crash_plan = CrashPlan()
        self._env = Environment(
            journal, TimerService(), crash=self.crash_plan, snapshot_every=snapshot_every
        )
        # Check mode: a handler changing self.state without ctx.record fails its step.
        self._env.check_state = statecheck.default() if check_state is None else check_state
        self.crash_plan.on_crash = self._die
        self._lock = threading.Lock()
        self._accepting: set[Future[Any]] = set()
        self._resumed: dict[str, int] = {}  # saga id -> its stream's last seq when resumed
        self._result_types: dict[tuple[str, str], Any] = {}  # (participant, action) -> type
        self._outcomes = OutcomeBoard(self._result_types)
        self._quarantine = Quarantine(self._outcomes)
        self._hosts: dict[str, pykka.ActorRef[Any]] = {}
        self._host_objects: dict[str, ParticipantHost] = {}
        self._definitions: dict[str, Saga | Choreography] = {}
        self._closed = False
        self._crash: BaseException | None = None
        _OPEN.add(self)
        self._subscribers: dict[str, list[str]] = {}
        self._event_types: dict[str, type[Any]] = {}
        self._timeline = Timeline(
            journal, self._host_objects, self._event_types, self._definitions, self._result_types
        )
        self._dispatcher = NativeDispatcher.start(
            self._env,
            self._hosts,
            self._subscribers,
            self._event_types,
            self._outcomes,
            self._load_saga,
        )
        self._coordinator = Coordinator.start(
            self._env, self._hosts, self._outcomes, self._load_saga
        )
        try:
            self.register(*participants)
            self.define(*sagas)
            if recover:
                self.recover()
        except BaseException:
            self.close()
            raise

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
        recover: bool = True,
        snapshot_every: int = 1000,
        check_state: bool | None = None,
    ) -> Runtime:
        """A runtime over the journal at ``path``; in-flight sagas are resumed.

        ``path`` is a SQLite file, or a PostgreSQL URL (``postgresql://...``, with the
        ``postgres`` extra installed; see the PostgreSQL page). ``create=False`` refuses a journal
        that does not exist yet (a missing or empty file, a database without sagactor's
        tables) instead of making one.

        ``check_state=True`` (the default under ``sagactor.testing.check_state()``) makes a
        handler that changes its participant's state without ``ctx.record`` fail its step with
        :class:`UnrecordedChange`: a mode for tests, it costs a state copy per handler.
        """
        from .persistence.sqlite import SqliteJournal

        journal = _open_journal(path, synchronous=synchronous, create=create)
        try:
            return cls(
                journal,
                participants=participants,
                sagas=sagas,
                recover=recover,
                snapshot_every=snapshot_every,
                check_state=check_state,
            )
        except BaseException as error:
            journal.close()
            if isinstance(journal, SqliteJournal):
                journal.remove_side_files()  # a refused file is left as it was found
            if isinstance(error, sqlite3.Error | msgspec.MsgspecError):  # a backstop: none should
                raise JournalCorrupt(journal.path, f"cannot be read: {error!r}") from error
            raise

    @classmethod
    def in_memory(
        cls,
        *,
        journal: MemoryJournal | None = None,
        participants: Iterable[Participant[Any]] = (),
        sagas: Iterable[Saga | Choreography] = (),
        recover: bool = True,
        snapshot_every: int = 1000,
        check_state: bool | None = None,
    ) -> Runtime:
        """A runtime whose journal lives in memory: fast, gone with the process.

        Pass the ``journal`` of a crashed in-memory runtime to recover from it.
        """
        return cls(
            journal if journal is not None else MemoryJournal(),
            participants=participants,
            sagas=sagas,
            recover=recover,
            snapshot_every=snapshot_every,
            check_state=check_state,
        )

    @property
    def journal(self) -> Journal:
        return self._env.journal

    # -- registration --------------------------------------------------------------------------

    def register(self, *participants: Participant[Any]) -> None:
        """Host each participant in its own actor; its state is rebuilt from the journal."""
        self._check_open()
        for participant in participants:
            if not isinstance(participant, Participant):
                raise DefinitionError(
                    repr(participant), "is not a sagactor Participant", kind="participant"
                )
            name = participant.participant_name
            if name in self._hosts:
                raise DefinitionError(name, "is already registered", kind="participant")
            if has_async_handlers(participant):
                self._env.portal.start()  # the event loop its async handlers run on
            host = ParticipantHost.launch(participant, self._env)
            self._hosts[name] = host.actor_ref
            self._host_objects[name] = host
            for action_name, spec in type(participant)._actions.items():
                self._result_types[(name, action_name)] = spec.returns
            for kind, spec in type(participant)._reactions.items():
                self._subscribers.setdefault(kind.__name__, []).append(name)
                self._event_types.update({t.__name__: t for t in (kind, *spec.emits)})

    def define(self, *sagas: Saga | Choreography) -> None:
        """Check each definition against the registered participants and remember it.

        A :class:`Choreography` is checked as a workflow graph (unhandled events, work without
        a compensation path, cycles): every problem found is listed in one DefinitionError.
        """
        for saga in sagas:
            if isinstance(saga, Choreography):
                participants = [h.participant for h in self._host_objects.values()]
                problems = check_choreography(saga, participants)
                if problems:
                    raise DefinitionError(saga.name, "; ".join(problems))
                self._event_types.update(choreography_types(saga, participants))
            else:
                self._validate(saga)
            known = self._definitions.get(saga.name)
            if known is not None and known != saga and known.version == saga.version:
                raise DefinitionError(
                    saga.name,
                    f"another definition with version {saga.version} is registered; "
                    "bump the version",
                )
            self._definitions[saga.name] = saga

    def _validate(self, saga: Saga) -> None:
        if not isinstance(saga, Saga):
            raise DefinitionError(repr(saga), "is not a sagactor Saga or Choreography")
        for step in saga.steps:
            host = self._host_objects.get(step.participant)
            if host is None:
                raise UnknownParticipant(saga.name, step.name, step.participant, list(self._hosts))
            kind = type(host.participant)
            if step.action not in kind._actions:
                raise DefinitionError(
                    saga.name,
                    f"participant {step.participant!r} has no action {step.action!r} "
                    f"(it has: {', '.join(sorted(kind._actions)) or 'none'})",
                    step=step.name,
                )
            if step.compensable and step.action not in kind._compensations:
                raise DefinitionError(
                    saga.name,
                    f"step is compensable but participant {step.participant!r} has no "
                    f"@compensation({step.action!r}); add one or mark the step compensable=False",
                    step=step.name,
                )

    # -- running sagas -------------------------------------------------------------------------

    def start(
        self,
        saga: Saga | Choreography | str,
        input: Any,
        *,
        saga_id: str | None = None,
        mode: Mode = "orchestration",
    ) -> SagaRun:
        """Start ``saga`` (a definition, or the name of a registered one) on ``input``; returns
        once the start is durably journaled.

        The input is first converted to the saga's ``input_type`` (a dict or a dataclass becomes
        that Struct); one that does not fit raises :class:`PayloadError` naming the field, and
        nothing is journaled. Handlers get the input as the journal gives it back, so they see
        the same value live and after a restart.

        A ``saga_id`` is an idempotency key: the same id with the same input returns the
        existing run; with another input, or another saga or version, it raises
        :class:`SagaIdConflict`.
        """
        return self.start_many(
            saga, [input], saga_ids=None if saga_id is None else [saga_id], mode=mode
        )[0]

    def start_many(
        self,
        saga: Saga | Choreography | str,
        inputs: Sequence[Any],
        *,
        saga_ids: Sequence[str] | None = None,
        mode: Mode = "orchestration",
    ) -> list[SagaRun]:
        """Start many sagas at once (their starts share group commits); one run per input."""
        accepted = self._submit(saga, inputs, saga_ids, mode)
        try:
            return [SagaRun(self, future.result()) for future in accepted]
        finally:
            self._settle(accepted)

    def _submit(
        self,
        saga: Saga | Choreography | str,
        inputs: Sequence[Any],
        saga_ids: Sequence[str] | None,
        mode: Mode,
    ) -> list[Future[str]]:
        """Ask the coordinator to start each saga; each future gives its id once journaled.

        Never blocks (``astart`` calls it on the event loop). Pair with :meth:`_settle`.
        """
        self._check_open()
        saga = self._definition(saga)
        if mode not in _MODES:
            raise DefinitionError(saga.name, f"mode must be one of {_MODES}, not {mode!r}")
        native = isinstance(saga, Choreography)
        if isinstance(saga, Choreography):
            for value in inputs:
                if not isinstance(value, saga.start):
                    raise DefinitionError(
                        saga.name, f"starts with a {saga.start.__name__}, not {value!r}"
                    )
        if saga_ids is not None and len(saga_ids) != len(inputs):
            raise DefinitionError(saga.name, "saga_ids and inputs differ in length")
        self.define(saga) if self._definitions.get(saga.name) is not saga else None
        # Check every input before starting any: a bad one must not leave half a batch started.
        checked: list[tuple[Any, bytes, str]] = []
        for index, given in enumerate(inputs):
            value, raw = prepare_input(saga, given)
            saga_id = saga_ids[index] if saga_ids is not None else uuid.uuid4().hex[:16]
            _check_saga_id(saga.name, saga_id)
            checked.append((value, raw, saga_id))
        accepted: list[Future[str]] = []
        for value, raw, saga_id in checked:
            future: Future[str] = Future()
            with self._lock:
                self._accepting.add(future)
            self._tell(
                self._dispatcher if native else self._coordinator,
                StartSaga(
                    definition=saga,
                    saga_id=saga_id,
                    mode="native" if native else mode,
                    input=value,
                    raw=raw,
                    digest=hashlib.blake2b(raw, digest_size=16).hexdigest(),
                    fresh=saga_ids is None,
                    accepted=future,
                ),
            )
            accepted.append(future)
        return accepted

    def _definition(self, saga: Saga | Choreography | str) -> Saga | Choreography:
        """``saga`` itself, or the registered definition it names."""
        if isinstance(saga, Saga | Choreography):
            return saga
        known = self._definitions.get(saga) if isinstance(saga, str) else None
        if known is None:
            registered = ", ".join(sorted(self._definitions)) or "none"
            raise DefinitionError(
                str(saga),
                "is neither a Saga, a Choreography nor the name of a registered one "
                f"(registered: {registered})",
            )
        return known

    def _settle(self, accepted: list[Future[str]]) -> None:
        """The caller no longer waits for these acceptances (a crash need not fail them)."""
        with self._lock:
            self._accepting.difference_update(accepted)

    def run(self, saga_id: str) -> SagaRun:
        """A handle on a saga started earlier (by this runtime or before a restart)."""
        self.status(saga_id)
        return SagaRun(self, saga_id)

    def status(self, saga_id: str) -> Outcome:
        """Where the saga stands now (its outcome if it ended), as its journal says.

        A saga that finished under an older or removed definition stays readable (from its own
        events, results then untyped). A quarantined saga's status is ``quarantined``, its
        reason the error that keeps it from loading.
        """
        try:
            if self._quarantine.get(saga_id) is None:
                state = self._load_saga(saga_id)
                if state is not None:
                    return self._outcomes.outcome(state)
            return self._quarantine.outcome(self.journal, saga_id)
        except RuntimeClosed:
            self._check_open()  # a crash released the journal: say that it crashed
            raise

    def cancel(self, saga_id: str, reason: str = "cancelled") -> None:
        """Stop a running saga: it compensates what it did (a saga that ended keeps its outcome).

        A native :class:`Choreography` needs a ``cancel`` event (its subscribers undo their
        work); without one this raises :class:`DefinitionError`. A natively choreographed saga
        past its point of no return completes: the cancel is then dropped with a warning.
        Raises :class:`SagaQuarantined` for a quarantined saga (retry it first).
        """
        self._check_open()
        definition = self._definitions.get(self._not_quarantined(saga_id).saga)
        if not isinstance(definition, Choreography):
            self._tell(self._coordinator, Cancel(saga_id, reason))
            return
        if definition.cancel is None:
            raise DefinitionError(
                definition.name,
                "declares no cancel event, so its sagas cannot be cancelled: pass "
                "Choreography(..., cancel=SomeEvent), an event whose subscribers undo their work",
            )
        participants = [h.participant for h in self._host_objects.values()]
        too_late, moot = cancel_plan(definition, participants)
        self._tell(self._dispatcher, CancelNative(saga_id, reason, too_late, moot))

    def resume(self, saga_id: str) -> None:
        """Retry what left a saga stuck (after fixing its cause): the failed compensation, or
        in native choreography the reaction that failed. Other sagas are left as they are.

        Raises :class:`SagaQuarantined` for a quarantined saga, and the error that keeps a
        stuck saga from loading (its definition removed, say) rather than ignore the resume.
        """
        self._check_open()
        outcome = self._not_quarantined(saga_id)
        if outcome.status != "stuck":
            return  # only a stuck saga resumes; its outcome stands otherwise
        try:
            load_saga(
                self.journal, saga_id, self.journal.read(saga_stream(saga_id)), self._definitions
            )
        except SagaQuarantined as error:
            raise error.cause from error
        with self._lock:  # until the resumed run ends, the journal's "stuck" is not its end
            self._resumed[saga_id] = self.journal.last_seq(saga_stream(saga_id))
        native = isinstance(self._definitions.get(outcome.saga), Choreography)
        self._tell(self._dispatcher if native else self._coordinator, Resume(saga_id))

    def recover(self) -> list[str]:
        """Resume every in-flight saga of the journal; returns their ids.

        A saga that cannot be loaded (its definition unknown or of another version, its input
        or events undecodable) is quarantined instead, never stopping the others: see
        :meth:`quarantined` and :meth:`retry_quarantined`.
        """
        self._check_open()
        found = find_in_flight(self.journal, self._definitions)
        for error in found.quarantined:
            self._quarantine.add(error)
        for state in found.states:
            self._quarantine.release(state.saga_id)  # its cause was fixed since
        return self._take_over(found.states)

    def quarantined(self) -> dict[str, SagaQuarantined]:
        """The quarantined sagas by id, each with the error that keeps it from loading."""
        return self._quarantine.errors()

    def retry_quarantined(self, saga_id: str) -> SagaRun:
        """Load a quarantined saga again (after fixing its cause) and resume it.

        Raises :class:`SagaQuarantined` if it still cannot load (it stays quarantined), and
        :class:`UnknownSaga` for an unknown id. A saga that is not quarantined is left as it is.
        """
        self._check_open()
        if self._quarantine.get(saga_id) is None:
            self.status(saga_id)
            return SagaRun(self, saga_id)
        self._take_over([self._quarantine.retry(self.journal, saga_id, self._definitions)])
        return SagaRun(self, saga_id)

    def _not_quarantined(self, saga_id: str) -> Outcome:
        outcome = self.status(saga_id)
        quarantined = self._quarantine.get(saga_id)
        if quarantined is not None:
            raise quarantined
        return outcome

    def _take_over(self, states: list[SagaState | NativeState]) -> list[str]:
        """Hand loaded sagas to their actors, which resume them; returns their ids."""
        done: Future[list[str]] = Future()
        with self._lock:
            self._accepting.add(done)
        natives = [st for st in states if isinstance(st, NativeState)]
        others = [st for st in states if not isinstance(st, NativeState)]
        native_done: Future[list[str]] = Future()
        with self._lock:
            self._accepting.add(native_done)
        self._tell(self._dispatcher, Recover(natives, native_done))
        try:
            resumed = native_done.result()
        finally:
            with self._lock:
                self._accepting.discard(native_done)
        self._tell(self._coordinator, Recover(others, done))
        try:
            return [*resumed, *done.result()]
        finally:
            with self._lock:
                self._accepting.discard(done)

    # -- looking inside ------------------------------------------------------------------------

    def history(self, saga_id: str) -> list[HistoryEntry]:
        """The saga's events across the coordinator and every participant, in journal order.

        Costs the saga's own records, whatever the journal's size. Entries are JSON-ready:
        payloads (input, results, published events) are decoded to their declared types.
        """
        return self._timeline.read(saga_id)

    def footprint(self) -> Footprint:
        """What this runtime holds in memory and snapshots now: bounded by live work."""
        inbox = {name: len(host.inbox) for name, host in self._host_objects.items()}
        snapshots = {}
        for name in self._host_objects:
            snapshot = self.journal.load_snapshot(f"participant/{name}")
            snapshots[name] = len(snapshot.data) if snapshot is not None else 0
        drivers: list[pykka.ActorRef[Any]] = [self._coordinator, self._dispatcher]
        return Footprint(
            sagas=sum(int(ref.ask(CountSagas(), block=True)) for ref in drivers if ref.is_alive()),
            waiters=len(self._outcomes),
            inbox=inbox,
            snapshot_bytes=snapshots,
        )

    def state(self, participant: str) -> Any:
        """A copy of a participant's current state."""
        ref = self._hosts.get(participant)
        if ref is None:
            raise UnknownParticipant("-", "-", participant, list(self._hosts))
        try:
            return ref.ask(GetState())
        except pykka.ActorDeadError as error:
            raise self._actors_gone() from error

    @property
    def participants(self) -> list[str]:
        return sorted(self._hosts)

    @property
    def definitions(self) -> dict[str, Saga | Choreography]:
        return dict(self._definitions)

    def saga_ids(self) -> list[str]:
        return [s.removeprefix("saga/") for s in self.journal.streams("saga/")]

    # -- faults and crashes (tests, playground) ------------------------------------------------

    def inject(
        self, participant: str, action: str, fault: Fault, *, compensation: bool = False
    ) -> None:
        """Make ``participant``'s handler for ``action`` misbehave (see :class:`Fault`)."""
        if participant not in self._hosts:
            raise UnknownParticipant("-", "-", participant, list(self._hosts))
        self._env.faults.inject(
            participant, action, fault, kind="compensation" if compensation else "action"
        )

    def clear_faults(self, participant: str | None = None) -> None:
        self._env.faults.clear(participant)

    @property
    def faults(self) -> list[tuple[tuple[str, str, str], Fault]]:
        return self._env.faults.items()

    def arm(self, point: CrashPoint | str, at_hit: int = 1) -> None:
        """Die at the ``at_hit``-th pass through ``point`` from now (a simulated ``kill -9``)."""
        self.crash_plan.arm(point, at_hit)

    def crash(self) -> None:
        """Die now, as ``kill -9`` would: queued journal writes are lost, nothing else runs."""
        self._die(SimulatedCrash(CrashPoint.AFTER_COMMIT, 0))

    @property
    def crashed(self) -> bool:
        return self._crash is not None

    def wait_until_crashed(self, timeout: float | None = None) -> bool:
        return self._env.dead.wait(timeout) and self._crash is not None

    def _die(self, crash: BaseException) -> None:
        with self._lock:
            if self._env.dead.is_set():
                return
            self._crash = crash
            self._env.dead.set()
            accepting = list(self._accepting)
        self._env.journal.kill()
        self._env.timers.stop()
        self._env.portal.close()  # cancels running async handlers
        error = RuntimeCrashed(f"the runtime crashed ({crash}); reopen the journal to recover")
        self._outcomes.fail_all(error)
        for future in accepting:
            if not future.done():
                future.set_exception(error)
        logger.warning("runtime died: %s", crash)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the actors and close the journal. In-flight sagas resume at the next open."""
        self._shutdown(None)

    def _shutdown(self, grace: float | None) -> None:
        """:meth:`close`, waiting at most ``grace`` seconds for the actors to finish their
        current handlers (None: as long as they run)."""
        _OPEN.discard(self)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            already_dead = self._env.dead.is_set()
            self._env.dead.set()
        self._env.timers.stop()
        self._env.portal.close()  # cancels running async handlers, so their actors stop soon
        refs: list[pykka.ActorRef[Any]] = [self._coordinator, self._dispatcher]
        stopping = [ref.stop(block=False) for ref in [*refs, *self._hosts.values()]]
        deadline = None if grace is None else time.monotonic() + grace
        for future in stopping:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(pykka.Timeout):  # a handler still running at exit
                future.get(timeout=left)
        if already_dead:
            self._env.journal.kill()  # from this thread it waits until the file is released
        else:
            self._env.journal.close()
            self._outcomes.fail_all(RuntimeClosed("the runtime was closed"))

    def _tell(self, ref: pykka.ActorRef[Any], message: Any) -> None:
        self._env.told += 1  # counted with the actors' own messages (bench/counts.py)
        try:
            ref.tell(message)
        except pykka.ActorDeadError as error:
            raise self._actors_gone() from error

    def _actors_gone(self) -> SagactorError:
        """What a caller learns when an actor of this runtime is gone (never pykka's error)."""
        if self._closed and self._crash is None:
            return RuntimeClosed("the runtime is closed")
        self._die(RuntimeCrashed("its actors were stopped from outside the runtime"))
        return RuntimeCrashed(f"the runtime crashed ({self._crash}); reopen the journal to recover")

    def _check_open(self) -> None:
        if self._crash is not None:
            raise RuntimeCrashed(
                f"the runtime crashed ({self._crash}); reopen the journal to recover"
            )
        if self._closed:
            raise RuntimeClosed("the runtime is closed")

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the async face (asyncio or trio, through anyio: see sagactor.aio) ---------------------

    async def astart(
        self,
        saga: Saga | Choreography | str,
        input: Any,
        *,
        saga_id: str | None = None,
        mode: Mode = "orchestration",
    ) -> SagaRun:
        """:meth:`start` for async callers: awaits the journaling without blocking the loop."""
        from .aio import start_saga

        definition = self._definition(saga)
        return await start_saga(self, definition, input, saga_id=saga_id, mode=mode)

    async def astatus(self, saga_id: str) -> Outcome:
        """:meth:`status` for async callers: the journal is read in a worker thread."""
        from .aio import status

        return await status(self, saga_id)

    async def ahistory(self, saga_id: str) -> list[HistoryEntry]:
        """:meth:`history` for async callers: the journal is read in a worker thread."""
        from .aio import history

        return await history(self, saga_id)

    def watch(self, saga_id: str) -> AsyncIterator[HistoryEntry]:
        """``async for entry in rt.watch(id)``: the saga's :meth:`history` as it happens.

        Starts with the entries already journaled, then yields each new one once, in journal
        order, and ends after the saga's terminal event.
        """
        from .aio import watch

        return watch(self, saga_id)

    async def aclose(self) -> None:
        """:meth:`close` for async callers (it runs in a worker thread)."""
        from .aio import close_runtime

        await close_runtime(self)

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _ended_in_journal(self, saga_id: str) -> Outcome | None:
        """The saga's outcome if its journal says it ended (a resumed one: ended again);
        raises if it is unknown or quarantined."""
        # The seq first: read after the events, it could pass a "stuck" read just before the
        # resume's SagaResumed landed for the end of the resumed run.
        resumed = self.journal.last_seq(saga_stream(saga_id)) <= self._resumed.get(saga_id, 0)
        outcome = self._not_quarantined(saga_id)
        if not outcome.status.terminal or resumed:
            return None  # running, or still the "stuck" that the resume is about to undo
        return outcome

    # -- replay --------------------------------------------------------------------------------

    def _load_saga(self, saga_id: str) -> SagaState | NativeState | None:
        return self._quarantine.load(self.journal, saga_id, self._definitions)


def _check_saga_id(saga: str, saga_id: str) -> None:
    if not isinstance(saga_id, str) or not saga_id or "/" in saga_id or saga_id != saga_id.strip():
        raise DefinitionError(
            saga, f"saga id {saga_id!r} must be a non-empty string without '/' or spaces around"
        )


def _open_journal(
    path: str | os.PathLike[str], *, synchronous: Literal["full", "normal"], create: bool
) -> Journal:
    """The SQLite journal at a path, or the PostgreSQL journal at a ``postgresql://`` URL."""
    if isinstance(path, str) and path.lower().startswith(("postgresql://", "postgres://")):
        try:
            from .persistence.postgres import PostgresJournal
        except ImportError as error:
            raise JournalError(
                f"a PostgreSQL journal needs psycopg: pip install 'sagactor[postgres]' ({error})"
            ) from error
        return PostgresJournal(path, synchronous=synchronous, create=create)
    from .persistence.sqlite import SqliteJournal

    if not create and not (os.path.isfile(path) and os.path.getsize(path) > 0):
        raise JournalError(f"journal {os.fspath(path)!r} does not exist (create=False)")
    return SqliteJournal(path, synchronous=synchronous)
