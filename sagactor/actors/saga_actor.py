"""What the coordinator and the native dispatcher share: one actor driving many sagas, which
never acts before the events that justify it are durable.

Subclasses decide which events a message causes (:meth:`receive`) and what to do once they are
committed (the ``then`` of :meth:`commit`); this class journals them, answers a start's
caller, publishes the outcome of a saga that ended, and on a failed commit rebuilds the saga
from the journal rather than trusting its memory.

The drivers run on the runtime's scheduler thread, beside other actors, so they never wait for
the disk: appends are pipelined and answered by messages. They do read the journal, briefly,
for a saga they do not hold: a start with a caller's id (is it taken?), a resume or cancel,
a reload after a failed commit. Listeners run here too, so they must be quick.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import pykka

from .. import clock
from ..actor_messages import CountSagas, Directory, Rebuild, Recover, SagaEnded, StartSaga
from ..codec import encode_event
from ..crashpoints import CrashPoint, SimulatedCrash
from ..errors import JournalCorrupt, SagaIdConflict
from ..messages import FINAL_EVENTS, Outcome, SagaEvent, SagaStatus, event_name
from ..names import saga_stream
from ..persistence.journal import Record
from ..persistence.recovery import decode_saga_events
from ..sagas.fold import summarize
from ..sagas.inputs import digest_key
from .aborts import die_of
from .environment import Environment
from .kinds import ActorKind, Callback, KindActor
from .outcomes import OutcomeBoard
from .start_failures import fail_start

__all__ = ["SagaActor", "SagaLoader"]

logger = logging.getLogger("sagactor")

SagaLoader = Callable[[str], Any]
_ENDED = (SagaStatus.COMPLETED, SagaStatus.COMPENSATED)
REBUILD_DELAY = 0.05  # seconds between a failed commit and the saga's reload from the journal


class SagaActor(KindActor):
    """Runs on the runtime's scheduler (see :class:`~sagactor.actors.kinds.ActorKinds`), so it
    never blocks: appends are pipelined and their answers come back to it as messages."""

    role = "saga actor"

    def __init__(
        self, kind: ActorKind, env: Environment, outcomes: OutcomeBoard, load: SagaLoader
    ) -> None:
        super().__init__(kind)
        self.directory = Directory()  # the catalog as last sent (a Directory message)
        self.env = env
        self.outcomes = outcomes
        self.load = load
        self.sagas: dict[str, Any] = {}
        self._reply_to = functools.partial(env.tell, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CountSagas):
            return len(self.sagas)
        if isinstance(message, Directory):
            self.directory = message
            return None
        if self.env.dead.is_set():
            return None
        try:
            if type(message) is Callback:
                message()  # a commit's answer, back on this actor's turn
            else:
                self.receive(message)
        except SimulatedCrash:
            return None  # the runtime is already dead; this thread just stops working
        except Exception as error:
            if self.env.dead.is_set():
                return None  # it died meanwhile (its journal closed under it): the crash answers
            # Never let pykka stop the actor silently: one bad message must not stop every saga.
            logger.exception("%s failed on %r", self.role, message)
            fail_start(self.sagas, message, self.role, error)  # its caller must not wait for ever
        except BaseException as error:  # noqa: BLE001 - pykka would stop every actor (see aborts)
            die_of(self.env, f"the {self.role} raised {error!r}", error)
        return None

    def on_stop(self) -> None:
        # Stopped while its runtime lives: pykka's stop_all, from anywhere in the process.
        die_of(self.env, f"the {self.role} was stopped from outside its runtime")

    @property
    def participants(self) -> Mapping[str, pykka.ActorRef[Any]]:
        return self.directory.participants

    def receive(self, message: Any) -> None:
        raise NotImplementedError

    def slot_freed(self, state: Any) -> None:
        """The end of ``state`` is durable: a slot of its saga's ``max_in_flight`` is free."""

    def already_started(self, msg: StartSaga) -> bool:
        """Answer a start whose id is taken: the same saga (name and version) and input are
        fine, anything else is a conflict. A saga found in the journal is judged by its own
        events, so one of a removed or older definition is a conflict, never a hang."""
        existing = self.sagas.get(msg.saga_id)
        if existing is not None:
            name, version, digest = (
                existing.definition.name,
                existing.definition.version,
                existing.digest,
            )
        elif msg.fresh:
            return False
        else:
            records = self.env.journal.read(saga_stream(msg.saga_id))
            if not records:
                return False
            try:
                found = summarize(msg.saga_id, decode_saga_events(self.env.journal, records))
            except JournalCorrupt as error:
                problem = f"by a saga whose journal cannot be read ({error})"
                msg.accepted.set_exception(SagaIdConflict(msg.saga_id, problem))
                return True
            name, version, digest = found.saga, found.version, digest_key(found.digest)
        if name != msg.definition.name:
            msg.accepted.set_exception(SagaIdConflict(msg.saga_id, f"by saga {name!r}"))
        elif version != msg.definition.version:
            problem = (
                f"by version {version} of saga {name!r} (this is version {msg.definition.version})"
            )
            msg.accepted.set_exception(SagaIdConflict(msg.saga_id, problem))
        elif digest != digest_key(msg.digest):
            msg.accepted.set_exception(SagaIdConflict(msg.saga_id, "with a different input"))
        else:
            msg.accepted.set_result(msg.saga_id)
        return True

    def commit(
        self,
        state: Any,
        events: list[SagaEvent],
        cause: str,
        then: Callable[[], None],
        accepted: Future[str] | None = None,
        *,
        wait: bool = True,
    ) -> None:
        """Journal ``events`` (already applied to ``state``); once durable, run ``then``.

        ``wait=False`` runs ``then`` at once, before the commit: only for a decision that
        recovery recomputes from facts already durable elsewhere (see :mod:`.recomputable`).
        If its append fails, the saga is rebuilt from the journal, as after any failed commit.
        """
        now = clock.now()
        first = state.seq - len(events) + 1
        stream = saga_stream(state.saga_id)
        records = [
            Record(stream, first + i, name, encode_event(e), now, cause, name in FINAL_EVENTS)
            for i, e in enumerate(events)
            for name in (event_name(e),)
        ]
        outcome: Outcome | None = None
        ended = False
        if state.status.terminal:
            outcome = self.outcomes.outcome(state)
            ended = state.status in _ENDED  # not stuck: that one can be resumed
            del self.sagas[state.saga_id]
        saga_id, me = state.saga_id, self.actor_ref
        name, status = state.definition.name, state.status

        def done(error: BaseException | None) -> None:
            if error is not None:
                if accepted is not None:
                    self.sagas.pop(saga_id, None)
                    accepted.set_exception(error)
                else:
                    # Not at once: while the disk is full, an immediate retry would spin.
                    retry = functools.partial(self.env.tell, me, Rebuild(saga_id))
                    self.env.timers.schedule(clock.now() + REBUILD_DELAY, retry)
                return
            self.env.crash.hit(CrashPoint.AFTER_COMMIT)
            if accepted is not None:
                accepted.set_result(saga_id)
            if not self.env.dead.is_set():
                # Before the commands it calls for (a step's span exists before its handler
                # runs) and before the outcome (a waiter finds the end already published).
                self.env.listeners.saga_events(saga_id, name, status, events, now)
                then()
                if ended:
                    self._ended(state)
                if outcome is not None:
                    self.slot_freed(state)
            if outcome is not None:
                self.outcomes.finish(outcome)
            self.env.commits.notify(saga_id)  # wake whoever watches this saga

        if accepted is None and outcome is None:
            if self.env.relaxed:
                # Relaxed durability: neither a start nor an end, so act without waiting.
                self.env.append_relaxed(records)
                done(None)
                return
            if not wait:
                self.env.early += 1
                answer = _only_failure(functools.partial(self.on_turn, done))
                self.env.append_unawaited(records, answer)
                done(None)
                return
        # The answer runs on this actor's turn, not on the journal's thread: it touches sagas.
        self.env.append(records, functools.partial(self.on_turn, done))

    def _ended(self, state: Any) -> None:
        """Tell the saga's participants it ended, after (and the way) every command of it went,
        so each may drop the saga's inbox records: nothing of it can reach them any more."""
        steps = getattr(state.definition, "steps", None)
        names = {s.participant for s in steps} if steps is not None else list(self.participants)
        message = SagaEnded(state.saga_id)
        for name in names:
            ref = self.participants.get(name)
            if ref is not None:
                self.env.tell(ref, message)

    def recover(self, msg: Recover, resume: Callable[[Any], None]) -> None:
        """Take over in-flight sagas and resume each through the normal path."""
        resumed: list[str] = []
        for state in msg.states:
            if state.saga_id in self.sagas:
                continue
            self.sagas[state.saga_id] = state
            resume(state)
            resumed.append(state.saga_id)
            self.env.crash.hit(CrashPoint.MID_RECOVERY)
        msg.done.set_result(resumed)

    def rebuild(self, saga_id: str, resume: Callable[[Any], None]) -> None:
        """Reload the saga once every earlier append has settled (the failed group's followers
        fail first). Without blocking: an empty append's answer says when; meanwhile the saga
        is not driven (late replies are dropped; the reload re-sends what they answered)."""
        self.sagas.pop(saga_id, None)

        def reload(error: BaseException | None) -> None:
            self.sagas.pop(saga_id, None)
            state = self.load(saga_id)
            if state is None or state.status.terminal:
                return
            self.sagas[saga_id] = state
            resume(state)

        self.env.append([], functools.partial(self.on_turn, reload))


def _only_failure(done: Callable[[BaseException | None], None]) -> Callable[[Any], None]:
    """A commit answer for a decision already acted on: only a failure still matters (and
    costs the actor a message; a success costs it nothing)."""

    def answer(error: BaseException | None) -> None:
        if error is not None:
            done(error)

    return answer
