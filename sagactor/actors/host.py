"""The actor that hosts one participant: its mailbox, and the commands of the saga drivers.

Per command: answer a repeat from the inbox; otherwise run the handler, then journal the
handler's changes and its inbox record in one append, and reply only once that append is
durable (the inbox and its stream: :mod:`~sagactor.actors.inbox`; ``@on`` reactions of native
choreography: :mod:`~sagactor.actors.reactions`). A compensation that arrives before its action
leaves a tombstone that refuses the action; a fence records what a non-compensable step in
doubt did and refuses later copies.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import msgspec
import pykka

from .. import clock
from ..actor_messages import (
    Began,
    Command,
    Deliver,
    GetState,
    Later,
    Published,
    Reply,
    SagaEnded,
)
from ..crashpoints import CrashPoint, SimulatedCrash
from ..errors import PayloadError, RuntimeCrashed, StepFailed, UnrecordedChange
from ..messages import (
    CompensationFailed,
    Handled,
    HandledOutcome,
    SagaEvent,
    StepAbandoned,
    StepCompensated,
    StepFenced,
    StepRetrying,
)
from ..messages import StepSucceeded as SagaStepSucceeded
from ..names import ACTION, COMPENSATION, ReplyOutcome
from ..persistence.journal import Record
from ..sagas.outcomes import decode_result
from .aborts import die_of
from .environment import Environment
from .inbox import NIL, convert
from .kinds import ActorKind, Callback
from .participant import HandlerSpec, Participant, StepContext
from .portal import HandlerCancelled
from .reactions import ReactingInbox

__all__ = ["ParticipantHost"]

logger = logging.getLogger("sagactor.participant")
_encode = msgspec.msgpack.encode


class ParticipantHost(ReactingInbox):
    """Hosts one participant: runs its actions and compensations for the saga drivers."""

    @classmethod
    def launch(
        cls, kind: ActorKind, participant: Participant[Any], env: Environment
    ) -> ParticipantHost:
        """Start a host and keep the object (``start`` returns only the ref): the runtime
        reads its decoders to type a participant's records in ``history``."""
        host = cls(kind, participant, env)
        pykka.ActorRegistry.register(host.actor_ref)
        host._start_actor_loop()
        return host

    # -- state ---------------------------------------------------------------------------------

    def _landed(self, late: Later) -> None:
        try:
            if isinstance(late.message, Command):
                self._handle(late.message)
            else:
                self._react(late.message)
        finally:
            left = self._resends.pop(late.saga_id) - 1
            if left:
                self._resends[late.saga_id] = left
            elif late.saga_id in self._ended:
                self._forget(late.saga_id)

    # -- messages ------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetState):
            return self._state_copy()  # asked: errors go back to the asker
        if self.env.dead.is_set():
            return None
        try:
            if self._stale:
                self._rebuild()
            if type(message) is Callback:
                message()  # a commit's answer, back on this actor's turn
            elif isinstance(message, Command):
                self._handle(message)
            elif isinstance(message, Deliver):
                self._react(message)
            elif isinstance(message, Later):
                self._landed(message)
            elif isinstance(message, SagaEnded):
                self._saga_ended(message.saga_id)
        except SimulatedCrash:
            return None  # the runtime is already dead; this thread just stops working
        except Exception:
            # Never let pykka stop the actor silently: a participant must outlive a bad message.
            logger.exception("participant %s failed on %r", self.name, message)
        except BaseException as error:  # noqa: BLE001 - KeyboardInterrupt, SystemExit: see aborts
            die_of(self.env, f"{self._where(message)} raised {error!r}", error)
        return None

    def on_stop(self) -> None:
        # Stopped while its runtime lives: pykka's stop_all, from anywhere in the process.
        die_of(self.env, f"participant {self.name!r} was stopped from outside its runtime")

    def _where(self, message: Any) -> str:
        if isinstance(message, Command):
            what = f"{message.kind} {message.name!r}"
        elif isinstance(message, Deliver):
            what = f"reaction to {type(message.event).__name__}"
        else:
            return f"participant {self.name!r}"
        return f"participant {self.name!r}, {what} of saga {message.saga_id!r}"

    def _state_copy(self) -> Any:
        if self.env.dead.is_set():
            raise RuntimeCrashed(f"participant {self.name!r} is gone with its runtime")
        try:
            if self._stale:
                self._rebuild()
            return copy.deepcopy(self.participant.state)
        except Exception:
            raise
        except BaseException as error:
            if not isinstance(error, SimulatedCrash):
                die_of(self.env, f"participant {self.name!r} raised {error!r} (its state)", error)
            raise RuntimeCrashed(f"participant {self.name!r} is gone with its runtime") from error

    def _handle(self, cmd: Command) -> None:
        key = cmd.key
        known = self.inbox.get(key)
        if known is not None:
            self._commit(cmd, [], None)
            return
        if cmd.kind == ACTION and f"{cmd.saga_id}/{cmd.step}/{COMPENSATION}" in self.inbox:
            # The compensation came first: refuse, so nothing stays reserved forever.
            self._send(cmd, "failed", reason="refused: the step was compensated before it ran")
            return
        if cmd.kind == COMPENSATION:
            did = self.inbox.get(f"{cmd.saga_id}/{cmd.step}/{ACTION}")
            if cmd.fence or did is None or did.outcome is not HandledOutcome.OK:
                outcome = HandledOutcome.TOMBSTONE if did is None else HandledOutcome.OK
                # A fence runs nothing: every copy sent before it was handled, later ones are
                # refused, and its answer says whether the step ran.
                reason = _fenced(did) if cmd.fence else ""
                self._commit(cmd, [], self._handled(cmd, outcome, reason=reason))
                return
        if not cmd.delayed and self._faulted(cmd):
            return
        if cmd.report_start:  # its time limit counts from now, not from when it was sent
            cmd.reply_to(Began(cmd.saga_id, cmd.step, cmd.kind, cmd.attempt, clock.now()))
        self._run(cmd)

    def _faulted(self, cmd: Command) -> bool:
        fault = self.env.faults.check(self.name, cmd.kind, cmd.name)
        if fault is None:
            return False
        if fault.kind == "delay":
            late = msgspec.structs.replace(cmd, delayed=True)
            self._later(cmd.saga_id, clock.now() + fault.seconds, late)
        elif fault.kind == "fail" and cmd.kind == ACTION and not cmd.retriable:
            self._commit(
                cmd, [], self._handled(cmd, HandledOutcome.FAILED, reason="injected failure")
            )
        else:
            self._send(cmd, "error", reason="injected error", retryable=True)
        return True

    def _run(self, cmd: Command) -> None:
        spec, ctx = self._context(cmd, self._apply)
        try:
            result, error = self._invoke(spec, ctx, self._arguments(spec, cmd), cmd), None
        except Exception as caught:  # noqa: BLE001 - a user's handler may raise anything
            result, error = None, caught
        self._finish(cmd, spec, ctx, result, error)

    def _context(
        self, cmd: Command, apply: Callable[[Any], None]
    ) -> tuple[HandlerSpec, StepContext]:
        p = self.participant
        spec = (p._actions if cmd.kind == ACTION else p._compensations)[cmd.name]
        ctx = StepContext(
            self.name, cmd.saga_id, cmd.step, cmd.kind, cmd.attempt, apply, cmd.results
        )
        return spec, ctx

    def _finish(
        self,
        cmd: Command,
        spec: HandlerSpec,
        ctx: StepContext,
        result: Any,
        error: BaseException | None,
    ) -> None:
        """Journal and answer what the handler did (``error``: what it raised), on this turn."""
        try:
            if error is not None:
                raise error
        except HandlerCancelled as cancelled:
            # An async handler outlived its step's timeout (or the runtime): none of it applies.
            # An action replies nothing: the coordinator's timer for the same limit, armed when
            # it began, retries it or puts it in doubt. A compensation replies an error.
            if not self.env.dead.is_set():
                self._undo(ctx)
                if cmd.kind == COMPENSATION:
                    self._send(cmd, "error", reason=str(cancelled), retryable=True)
            return
        except StepFailed as failure:
            self._undo(ctx)
            if cmd.kind == ACTION and not cmd.retriable:  # past the pivot it is retried
                self._commit(
                    cmd, [], self._handled(cmd, HandledOutcome.FAILED, reason=failure.reason)
                )
            else:
                self._send(cmd, "error", reason=f"StepFailed: {failure.reason}", retryable=True)
            return
        except UnrecordedChange as unrecorded:  # a bug in the handler: retrying cannot help
            self._undo(ctx, force=True)
            self._send(cmd, "error", reason=str(unrecorded), retryable=False)
            return
        except Exception as error:  # noqa: BLE001 - a user's handler may raise anything
            self._undo(ctx)
            retryable = isinstance(error, cmd.retry_on)
            self._send(cmd, "error", reason=f"{type(error).__name__}: {error}", retryable=retryable)
            return
        try:
            raw = msgspec.Raw(_encode(result)) if cmd.kind == ACTION else NIL
            # The result as the journal gives it back, typed by the annotation: the same value
            # live, from a repeat's inbox record, and after a restart (and checked now).
            value = msgspec.msgpack.decode(raw, type=spec.returns) if cmd.kind == ACTION else None
            records = [self._encoded(c, cmd.key) for c in ctx.changes]
        except (msgspec.EncodeError, msgspec.ValidationError, TypeError, OverflowError) as bad:
            self._undo(ctx, force=True)
            what = f"the result of {spec.method!r}"
            if isinstance(bad, msgspec.ValidationError):
                what += f" as the {getattr(spec.returns, '__name__', spec.returns)} it declares"
            problem = PayloadError(what, bad, saga_id=cmd.saga_id, step=cmd.step)
            # Nothing is recorded, so the step is in doubt like any technical failure: its
            # compensation leaves a tombstone against a copy of the command still on its way.
            self._send(cmd, "error", reason=str(problem), retryable=False)
            return
        self._commit(cmd, records, self._handled(cmd, HandledOutcome.OK, result=raw), value=value)

    def _arguments(self, spec: HandlerSpec, cmd: Command) -> list[Any]:
        args = [convert(cmd.input, spec.arg_types[0])]
        if cmd.kind == COMPENSATION:
            did = self.inbox[f"{cmd.saga_id}/{cmd.step}/{ACTION}"]
            done = spec.arg_types[1]
            if done is Any:  # unannotated: what the action declared, as in Outcome.results
                done = self.participant._actions[cmd.name].returns
            args.append(decode_result(did.result, done))
        return args

    def _handled(
        self, cmd: Command, outcome: HandledOutcome, *, result: msgspec.Raw = NIL, reason: str = ""
    ) -> Handled:
        return Handled(
            key=cmd.key,
            saga_id=cmd.saga_id,
            step=cmd.step,
            kind=cmd.kind,
            outcome=outcome,
            result=result,
            reason=reason,
        )

    def _commit(
        self, cmd: Command, records: list[Record], handled: Handled | None, value: Any = None
    ) -> None:
        """Journal ``records`` and ``handled``, then reply. A repeated message passes
        ``handled=None``: nothing new is written, and the recorded answer is sent."""
        answer = handled if handled is not None else self.inbox[cmd.key]

        def reply() -> None:
            self.env.crash.hit(CrashPoint.BEFORE_REPLY)
            self._answer(cmd, answer, value)

        def failed(error: BaseException) -> None:
            self._send(cmd, "error", reason=f"journal: {error}", retryable=True)

        self._journal(cmd.saga_id, records, handled, reply, failed)

    def _answer(self, cmd: Command, handled: Handled, value: Any) -> None:
        if handled.outcome is HandledOutcome.FAILED:
            self._send(cmd, "failed", reason=handled.reason)
        elif handled.kind == ACTION and cmd.kind == ACTION:
            if value is None:  # a repeat, answered from the inbox record
                returns = self.participant._actions[cmd.name].returns
                value = decode_result(handled.result, returns)  # plain if the type changed
            self._send(cmd, "ok", result=value, raw=handled.result)
        else:
            self._send(cmd, "ok", reason=handled.reason)  # a fence's reason: what it found

    def _send(
        self,
        cmd: Command,
        outcome: ReplyOutcome,
        *,
        result: Any = None,
        raw: msgspec.Raw = NIL,
        reason: str = "",
        retryable: bool = False,
    ) -> None:
        if self.env.dead.is_set():
            return
        if cmd.mode == "choreography":
            self._publish(cmd, outcome, result, raw, reason, retryable)
            return
        cmd.reply_to(
            Reply(
                cmd.saga_id,
                cmd.step,
                cmd.kind,
                cmd.attempt,
                outcome,
                result,
                raw,
                reason,
                retryable,
            )
        )

    def _publish(
        self,
        cmd: Command,
        outcome: str,
        result: Any,
        raw: msgspec.Raw,
        reason: str,
        retryable: bool,
    ) -> None:
        """Choreography: publish the outcome as an event. A technical error with attempts left
        is published as the retry it calls for; the dispatcher re-delivers the command when it
        is due (a compensation's errors are always retried, as in orchestration)."""
        event: SagaEvent
        tries = cmd.attempt - cmd.attempt_base
        retry = retryable or cmd.kind == COMPENSATION or cmd.retriable
        if outcome == "error" and retry and (tries < cmd.policy.max_attempts or cmd.retriable):
            due = clock.now() + cmd.policy.delay(tries)
            if cmd.kind == ACTION:
                event = StepRetrying(step=cmd.step, attempt=cmd.attempt, error=reason, due=due)
            else:
                event = CompensationFailed(
                    step=cmd.step, attempt=cmd.attempt, error=reason, due=due
                )
        elif cmd.kind == ACTION:
            if outcome == "ok":
                event = SagaStepSucceeded(step=cmd.step, result=raw)
            else:
                business = outcome == "failed"
                event = StepAbandoned(
                    step=cmd.step, attempt=cmd.attempt, reason=reason, business=business
                )
        elif outcome == "ok":
            event = (
                StepFenced(step=cmd.step, outcome=reason)
                if cmd.fence
                else StepCompensated(step=cmd.step)
            )
        else:
            event = CompensationFailed(step=cmd.step, attempt=cmd.attempt, error=reason, due=0.0)
        self.env.crash.hit(CrashPoint.BEFORE_DISPATCH)
        cmd.reply_to(Published(cmd.saga_id, event, result))


def _fenced(did: Handled | None) -> str:
    """What a fence found: the step ``completed``, ``failed``, or never ran (``refused``)."""
    if did is None:
        return "refused"
    return "completed" if did.outcome is HandledOutcome.OK else "failed"
