"""The engine: what the sync face (:class:`~sagactor.Runtime`, :class:`~sagactor.SagaRun`) and
the async face (:mod:`sagactor.aio`) share, used by both through public methods only.

It owns the actors' wiring (hosts, coordinator, native dispatcher, one ``Environment``), the
outcome board where callers wait, quarantine, recovery, life. Faces add how a caller waits.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any

import pykka

from . import recovering
from .actor_messages import Cancel, CancelNative, Recover, Resume, StartSaga
from .actors import admission, statecheck
from .actors.coordinator import Coordinator
from .actors.dispatcher import NativeDispatcher
from .actors.environment import Environment
from .actors.kinds import ActorKinds
from .actors.outcomes import OutcomeBoard, Submitted, fail_waiting
from .catalog import Catalog
from .crashpoints import CrashPlan, CrashPoint, SimulatedCrash
from .dead_letters import DEFAULT_MAX_RECOVERY_ATTEMPTS, DeadLetters
from .errors import DefinitionError, RuntimeClosed, RuntimeCrashed, SagactorError, SagaQuarantined
from .forgotten import OPEN
from .history import HistoryEntry, Timeline
from .messages import Outcome
from .names import DURABILITIES, MODES, NATIVE, Durability, Mode, saga_stream
from .observe import Listener, Listeners, RecoveryCallback
from .persistence.journal import Journal
from .persistence.recovery import load_saga
from .quarantine import Quarantine
from .recovering import RecoveryGate
from .sagas.definition import Choreography, Saga
from .sagas.inputs import prepare_starts
from .sagas.machine import SagaState
from .sagas.native import NativeState
from .sagas.workflow import cancel_plan

__all__ = ["Engine"]

logger = logging.getLogger("sagactor")


class Engine:
    """One runtime's actors, journal, outcomes and quarantine. Thread-safe where it says so:
    every method may be called from any thread, none blocks an event loop for long except
    :meth:`shutdown`, :meth:`recover` and the journal reads (``status``, ``history``)."""

    def __init__(
        self,
        journal: Journal,
        *,
        snapshot_every: int = 1000,
        check_state: bool | None = None,
        listeners: Iterable[Listener] = (),
        max_recovery_attempts: int | None = DEFAULT_MAX_RECOVERY_ATTEMPTS,
        durability: Durability = "full",
        kinds: ActorKinds | None = None,
    ) -> None:
        if durability not in DURABILITIES:
            raise DefinitionError("durability", f"must be one of {DURABILITIES}", kind="setting")
        self.dead_letters = DeadLetters(max_recovery_attempts)
        self.crash_plan = CrashPlan()
        # Check mode: a handler changing self.state without ctx.record fails its step.
        checking = statecheck.default() if check_state is None else check_state
        # How this runtime's actors run: decided there, once (threads, or a simulation's loop).
        self.kinds = ActorKinds() if kinds is None else kinds
        self.env = Environment(journal, self.kinds.timers(), crash=self.crash_plan)
        self.env.snapshot_every, self.env.check_state = snapshot_every, checking
        self.env.listeners, self.env.relaxed = Listeners(list(listeners)), durability == "relaxed"
        self.crash_plan.on_crash = self.die
        self._lock = threading.Lock()
        self._accepting: set[Future[Any]] = set()
        self._resumed: dict[str, int] = {}  # saga id -> its stream's last seq when resumed
        self.recovery = RecoveryGate()  # a background recovery, which some calls wait for
        self.catalog = Catalog(self.env, self.kinds, on_change=self._publish_catalog)
        self.directory = self.catalog.directory()  # the catalog as the actors see it
        board = OutcomeBoard(self.directory.result_types, self.env.admission.position)
        self.outcomes = self.env.outcomes = board
        self.quarantine = Quarantine(self.outcomes)
        self._closed = False
        self._crash: BaseException | None = None
        OPEN.add(self)
        self.timeline = Timeline(journal, self.catalog)
        wiring = (self.kinds.drivers, self.env, self.outcomes, self.load_saga)
        self._dispatcher = self.env.native = NativeDispatcher.start(*wiring)
        self._coordinator = self.env.coordinator = Coordinator.start(*wiring)

    def _publish_catalog(self) -> None:
        """The catalog changed: the drivers, the engine and the board get its new snapshot."""
        directory = self.catalog.directory()
        self.directory = directory
        self.outcomes.result_types = directory.result_types
        for driver in (self._coordinator, self._dispatcher):
            self.tell(driver, directory)

    @property
    def journal(self) -> Journal:
        return self.env.journal

    # -- starting sagas --------------------------------------------------------------------------

    def submit(
        self,
        saga: Saga | Choreography | str,
        inputs: Sequence[Any],
        saga_ids: Sequence[str] | None,
        mode: Mode,
        priority: int = 0,
        fork: Any = None,  # a sagas.forks.Fork: they begin part-way (Runtime.restart)
    ) -> list[Submitted]:
        """Ask the drivers to start each saga; each future gives its id once journaled.
        Never blocks (the async face calls it on the event loop). Pair with :meth:`settle`.
        Fresh ids (no ``saga_ids``) are tracked on the outcome board until their sagas end."""
        self.check_open()
        priority = admission.check_priority(priority)  # its place in the queue, if it has to wait
        saga = self.catalog.definition(saga)
        if recovering.waits_for_recovery(saga, fork):
            self.recovery.hold()
        if mode not in MODES:
            raise DefinitionError(saga.name, f"mode must be one of {MODES}, not {mode!r}")
        native = isinstance(saga, Choreography)
        if self.catalog.definitions.exact(saga.name, saga.version) is not saga:
            self.catalog.define(saga)  # a version of its own: new starts by name keep the latest
        starts, fresh = prepare_starts(saga, inputs, saga_ids), saga_ids is None
        submitted: list[Submitted] = []
        driver = self._dispatcher if native else self._coordinator
        for value, raw, saga_id, digest in starts:
            future: Future[str] = Future()
            completion = self.outcomes.track(saga_id) if fresh else None
            if fresh:
                future.add_done_callback(functools.partial(self.outcomes.start_failed, saga_id))
            with self._lock:
                self._accepting.add(future)
            self.tell(
                driver,
                StartSaga(
                    definition=saga,
                    saga_id=saga_id,
                    mode=NATIVE if native else mode,
                    input=value,
                    raw=raw,
                    digest=digest,
                    fresh=fresh,
                    accepted=future,
                    fork=fork,
                    priority=priority,
                ),
            )
            submitted.append(Submitted(saga_id, future, completion))
        return submitted

    def settle(self, accepted: list[Future[str]]) -> None:
        """The caller no longer waits for these acceptances (a crash need not fail them)."""
        with self._lock:
            self._accepting.difference_update(accepted)

    # -- one saga --------------------------------------------------------------------------------

    def status(self, saga_id: str) -> Outcome:
        """Where the saga stands now, as its journal says (see ``Runtime.status``)."""
        try:
            if self.quarantine.get(saga_id) is None:
                state = self.load_saga(saga_id)
                if state is not None:
                    return self.outcomes.outcome(state)
            return self.quarantine.outcome(self.journal, saga_id)
        except RuntimeClosed:
            self.check_open()  # a crash released the journal: say that it crashed
            raise

    def not_quarantined(self, saga_id: str) -> Outcome:
        """:meth:`status`; raises :class:`SagaQuarantined`. Waits for a background recovery."""
        self.recovery.hold()
        outcome = self.status(saga_id)
        quarantined = self.quarantine.get(saga_id)
        if quarantined is not None:
            raise quarantined
        return outcome

    def ended_in_journal(self, saga_id: str) -> Outcome | None:
        """The saga's outcome if its journal says it ended (a resumed one: ended again), or
        raises. A waiter takes its future from :attr:`outcomes` first, then calls this."""
        # The seq first: read after the events, it could pass a "stuck" read for a resumed end.
        try:
            last = self.journal.last_seq(saga_stream(saga_id))
        except RuntimeClosed:
            self.check_open()  # a crash released the journal: say that it crashed
            raise
        resumed = last <= self._resumed.get(saga_id, 0)
        outcome = self.not_quarantined(saga_id)
        if not outcome.status.terminal or resumed:
            return None  # running, or still the "stuck" that the resume is about to undo
        return outcome

    def on_commit(self, saga_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (any thread) whenever the saga has new records; returns its stop."""
        return self.env.commits.subscribe(saga_id, callback)

    def history(self, saga_id: str) -> list[HistoryEntry]:
        return self.timeline.read(saga_id)

    def cancel(self, saga_id: str, reason: str) -> None:
        """See ``Runtime.cancel``."""
        self.check_open()
        self.not_quarantined(saga_id)
        definition = self.catalog.definition_of(saga_id)  # the version it runs under
        if not isinstance(definition, Choreography):
            self.tell(self._coordinator, Cancel(saga_id, reason))
            return
        if definition.cancel is None:
            raise DefinitionError(
                definition.name,
                "declares no cancel event, so its sagas cannot be cancelled: pass "
                "Choreography(..., cancel=SomeEvent), an event whose subscribers undo their work",
            )
        too_late, moot = cancel_plan(definition, self.catalog.reactions())
        self.tell(self._dispatcher, CancelNative(saga_id, reason, too_late, moot))

    def resume(self, saga_id: str) -> None:
        """See ``Runtime.resume``."""
        self.check_open()
        outcome = self.not_quarantined(saga_id)
        if outcome.status != "stuck":
            return  # only a stuck saga resumes; its outcome stands otherwise
        try:
            load_saga(
                self.journal,
                saga_id,
                self.journal.read(saga_stream(saga_id)),
                self.catalog.definitions,
            )
        except SagaQuarantined as error:
            raise error.cause from error
        native = isinstance(self.catalog.definition_of(saga_id), Choreography)
        self.drive(saga_id, Resume(saga_id), native=native)

    def drive(self, saga_id: str, message: Any, *, native: bool = False) -> None:
        """Send a stuck saga an operator's message (a resume, a resolve): until it ends again,
        the journal's "stuck" is not its end."""
        self.recovery.hold()
        with self._lock:
            self._resumed[saga_id] = self.journal.last_seq(saga_stream(saga_id))
        self.tell(self._dispatcher if native else self._coordinator, message)

    # -- recovery --------------------------------------------------------------------------------

    def recover(self, progress: RecoveryCallback | None = None) -> list[str]:
        """Resume every in-flight saga of the journal (quarantine those that cannot load)."""
        self.recovery.hold()
        return recovering.recover(self, progress, None)

    def recover_in_background(self, progress: RecoveryCallback | None = None) -> None:
        """Resume the sagas in flight now on a thread of its own (see :mod:`.recovering`)."""
        only, threads = recovering.open_sagas(self), self.kinds.threaded
        self.recovery.begin(lambda: recovering.recover(self, progress, only), threaded=threads)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Subscribe a listener to saga and recovery notices (see ``Runtime.listen``)."""
        return self.env.listeners.add(listener)

    def retry_quarantined(self, saga_id: str) -> None:
        """Load a quarantined saga again and resume it (see ``Runtime.retry_quarantined``)."""
        self.check_open()
        self.recovery.hold()
        if self.quarantine.get(saga_id) is None:
            self.status(saga_id)
            return
        definitions = self.catalog.definitions
        self.take_over([self.quarantine.retry(self.journal, saga_id, definitions)])

    def retry_dead(self, saga_id: str) -> None:
        """Bring a dead letter back and resume it (see ``Runtime.retry_dead``)."""
        self.check_open()
        self.recovery.hold()
        state = self.dead_letters.revive(self.journal, saga_id, self.catalog.definitions)
        if state is not None:
            self.take_over([state])

    def load_saga(self, saga_id: str) -> SagaState | NativeState | None:
        """The saga rebuilt for a driver; None if unknown or quarantined (it is then)."""
        return self.quarantine.load(self.journal, saga_id, self.directory.definitions)

    def take_over(self, states: list[SagaState | NativeState]) -> list[str]:
        """Hand loaded sagas to their actors, which resume them; returns their ids."""
        done: Future[list[str]] = Future()
        native_done: Future[list[str]] = Future()
        with self._lock:  # both now, so that a crash or close meanwhile fails both
            self.check_open()  # one before now would never answer them (a background recovery)
            self._accepting.update((done, native_done))
        natives = [st for st in states if isinstance(st, NativeState)]
        others = [st for st in states if not isinstance(st, NativeState)]
        try:
            self.tell(self._dispatcher, Recover(natives, native_done))
            self.kinds.settle(native_done.done)
            resumed = native_done.result()
            self.tell(self._coordinator, Recover(others, done))
            self.kinds.settle(done.done)
            return [*resumed, *done.result()]
        finally:
            with self._lock:
                self._accepting.difference_update((done, native_done))

    @property
    def drivers(self) -> list[pykka.ActorRef[Any]]:  # the coordinator, the native dispatcher
        return [self._coordinator, self._dispatcher]

    # -- life and death --------------------------------------------------------------------------

    @property
    def crashed(self) -> bool:
        return self._crash is not None

    def wait_until_crashed(self, timeout: float | None = None) -> bool:
        return self.env.dead.wait(timeout) and self._crash is not None

    def crash(self) -> None:
        """Die now, as ``kill -9`` would: queued journal writes are lost, nothing else runs."""
        self.die(SimulatedCrash(CrashPoint.AFTER_COMMIT, 0))

    def die(self, crash: BaseException) -> None:
        with self._lock:
            if self.env.dead.is_set():
                return
            self._crash = crash
            self.env.dead.set()
            accepting = list(self._accepting)
        self.env.journal.kill()
        self.env.timers.stop()
        self.env.portal.close()  # cancels running async handlers
        error = RuntimeCrashed(f"the runtime crashed ({crash}); reopen the journal to recover")
        self.outcomes.fail_all(error)
        fail_waiting(accepting, error)
        logger.warning("runtime died: %s", crash)

    def shutdown(self, grace: float | None) -> None:
        """Stop the actors and close the journal, waiting at most ``grace`` seconds for the
        actors to finish their current handlers (None: as long as they run)."""
        if self.kinds.on_scheduler:  # a callback closes: its actors stop elsewhere
            threading.Thread(target=self.shutdown, args=(grace,), daemon=True).start()
            return
        OPEN.discard(self)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            already_dead = self.env.dead.is_set()
            self.env.dead.set()
            accepting = list(self._accepting)
        self.env.timers.stop()
        self.env.portal.close()  # cancels running async handlers, so their actors stop soon
        stopping = [r.stop(block=False) for r in [*self.drivers, *self.catalog.refs.values()]]
        self.kinds.settle(lambda: False)  # a simulation: its actors stop on this thread
        deadline = None if grace is None else time.monotonic() + grace
        for future in stopping:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(pykka.Timeout):  # a handler still running at exit
                future.get(timeout=left)
        fail_waiting(accepting, RuntimeClosed("the runtime was closed"))  # never answered now
        self.recovery.join(grace)  # a background recovery ends (RuntimeClosed)
        if already_dead:
            self.env.journal.kill()  # from this thread it waits until the file is released
        else:
            self.env.journal.close()
            self.outcomes.fail_all(RuntimeClosed("the runtime was closed"))
        self.kinds.close()

    def tell(self, ref: pykka.ActorRef[Any], message: Any) -> None:
        self.env.told += 1  # counted with the actors' own messages (bench/counts.py)
        try:
            ref.tell(message)
        except pykka.ActorDeadError as error:
            raise self.actors_gone() from error

    def actors_gone(self) -> SagactorError:
        """What a caller learns when an actor of this runtime is gone (never pykka's error)."""
        if self._closed and self._crash is None:
            return RuntimeClosed("the runtime is closed")
        self.die(RuntimeCrashed("its actors were stopped from outside the runtime"))
        return RuntimeCrashed(f"the runtime crashed ({self._crash}); reopen the journal to recover")

    def check_open(self) -> None:
        """Raise :class:`RuntimeCrashed` or :class:`RuntimeClosed` if the runtime is gone."""
        if self._crash is not None:
            raise RuntimeCrashed(
                f"the runtime crashed ({self._crash}); reopen the journal to recover"
            )
        if self._closed:
            raise RuntimeClosed("the runtime is closed")
