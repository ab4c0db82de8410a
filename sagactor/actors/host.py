"""The actor that hosts one participant: its mailbox, its idempotent inbox, its journal stream.

Per command: answer a repeat from the inbox; otherwise run the handler, then journal the
handler's changes and the record "message M handled, with result R" in one append, and reply
only once that append is durable. Appends are pipelined (the actor does not wait for the disk);
the journal's per-stream sequence numbers make every append after a failed one fail too, and
the actor then rebuilds its state from the journal rather than trust its memory.

The inbox holds only live sagas' records (so memory and snapshots are bounded by live work).
A saga's records are dropped when its driver says :class:`SagaEnded`, which it sends after
every command of the saga, so no copy of a message of that saga can arrive later: except a copy
this host scheduled for itself (a delay fault, a choreography retry), which is why those are
counted per saga and keep the records until the last one has landed. At startup nothing is in
the air: the records of sagas whose journal says they ended are dropped at once.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pykka

from ..actor_messages import (
    Began,
    Command,
    Deliver,
    GetState,
    NativePublished,
    Published,
    Reply,
    SagaEnded,
)
from ..crashpoints import CrashPoint, SimulatedCrash
from ..errors import (
    DefinitionError,
    JournalCorrupt,
    PayloadError,
    RuntimeCrashed,
    StepFailed,
    UnrecordedChange,
)
from ..messages import (
    ENDED_EVENTS,
    CompensationFailed,
    Emitted,
    Handled,
    HandledOutcome,
    ParticipantSnapshot,
    SagaEvent,
    StepCompensated,
    StepFenced,
    StepRetrying,
)
from ..messages import StepFailed as SagaStepFailed
from ..messages import StepSucceeded as SagaStepSucceeded
from ..names import ACTION, COMPENSATION, REACTION, ReplyOutcome, participant_stream, saga_stream
from ..persistence.journal import Record, Snapshot
from ..sagas.native import event_id
from ..sagas.outcomes import decode_result
from .aborts import die_of
from .environment import Environment
from .participant import HandlerSpec, Participant, StepContext, apply_change
from .portal import HandlerCancelled
from .statecheck import StateCheck

__all__ = ["HANDLED", "ParticipantHost"]

logger = logging.getLogger("sagactor.participant")

HANDLED = "sagactor.Handled"
_NIL = msgspec.Raw(b"\xc0")
_REACTION_ATTEMPTS = 3
_encode = msgspec.msgpack.encode
_decode_handled = msgspec.msgpack.Decoder(Handled).decode
_decode_snapshot = msgspec.msgpack.Decoder(ParticipantSnapshot).decode


class _Later(msgspec.Struct, frozen=True):
    """A message this host scheduled for itself (a delay fault, a retry), now due."""

    saga_id: str
    message: Any


class ParticipantHost(pykka.ThreadingActor):
    use_daemon_thread = True  # a forgotten runtime must not keep the process alive (atexit)

    def __init__(self, participant: Participant[Any], env: Environment) -> None:
        super().__init__()
        self.participant = participant
        self.name = participant.participant_name
        self.env = env
        self.stream = participant_stream(self.name)
        self.inbox: dict[str, Handled] = {}
        self._keys: dict[str, list[str]] = {}  # saga id -> its inbox keys
        self._resends: dict[str, int] = {}  # saga id -> self-scheduled messages not yet landed
        self._ended: set[str] = set()  # ended, but waiting for its resends to land
        self.seq = 0
        self._stale = False
        self._change_types = {cls.__name__: cls for cls in type(participant)._evolvers}
        self._decoders = {
            name: msgspec.msgpack.Decoder(cls) for name, cls in self._change_types.items()
        }
        self._check = StateCheck(participant, self._apply) if env.check_state else None
        self.load(startup=True)

    @classmethod
    def launch(cls, participant: Participant[Any], env: Environment) -> ParticipantHost:
        """Start a host and keep the object (``start`` returns only the ref): the runtime
        reads its decoders to type a participant's records in ``history``."""
        host = cls(participant, env)
        pykka.ActorRegistry.register(host.actor_ref)
        host._start_actor_loop()
        return host

    # -- state ---------------------------------------------------------------------------------

    def load(self, *, startup: bool = False) -> None:
        """Rebuild state and inbox: the latest snapshot, then the stream's tail.

        At ``startup`` the records of sagas that ended are dropped (nothing is in the air).
        Later (a rebuild), those of sagas this host had already dropped are dropped again.
        """
        p = self.participant
        p.state = p.initial_state()
        known = set(self._keys)
        self.inbox, self._keys = {}, {}
        self.seq = 0
        snapshot = self.env.journal.load_snapshot(self.stream)
        if snapshot is not None:
            try:
                saved = _decode_snapshot(snapshot.data)
                if p.state is not None:
                    p.state = msgspec.msgpack.decode(saved.state, type=type(p.state))
            except msgspec.DecodeError as error:
                raise JournalCorrupt(
                    self.env.journal.path, f"{self.stream} snapshot: {error}"
                ) from error
            for handled in saved.inbox:
                self._remember(handled)
            self.seq = snapshot.seq
        for record in self.env.journal.read(self.stream, after=self.seq):
            self._replay(record)
            self.seq = record.seq
        if startup:
            streams = {saga_stream(saga_id): saga_id for saga_id in self._keys}
            ended = self.env.journal.latest(streams)
            gone = [streams[s] for s, last in ended.items() if last.type in ENDED_EVENTS]
        else:
            gone = [saga_id for saga_id in self._keys if saga_id not in known]
        for saga_id in gone:
            if saga_id not in self._resends:
                self._forget(saga_id)

    def _remember(self, handled: Handled) -> None:
        if handled.key not in self.inbox:
            self._keys.setdefault(handled.saga_id, []).append(handled.key)
        self.inbox[handled.key] = handled

    def _forget(self, saga_id: str) -> None:
        """Drop a saga's inbox records: no copy of its messages can reach this host again."""
        self._ended.discard(saga_id)
        for key in self._keys.pop(saga_id, ()):
            self.inbox.pop(key, None)

    def _saga_ended(self, saga_id: str) -> None:
        if saga_id in self._resends:
            self._ended.add(saga_id)  # dropped once its last self-scheduled copy has landed
        else:
            self._forget(saga_id)

    def _later(self, saga_id: str, due: float, message: Any) -> None:
        """Deliver ``message`` to this host at ``due``; the saga's records stay until then."""
        self._resends[saga_id] = self._resends.get(saga_id, 0) + 1
        late, me = _Later(saga_id, message), self.actor_ref
        self.env.timers.schedule(due, lambda: self.env.tell(me, late))

    def _landed(self, late: _Later) -> None:
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

    def decode(self, record: Record) -> Any:
        """The typed event a record of this participant's stream holds."""
        try:
            if record.type == HANDLED:
                return _decode_handled(record.data)
            decoder = self._decoders.get(record.type)
            if decoder is None:
                raise JournalCorrupt(
                    self.env.journal.path,
                    f"{self.stream} record {record.seq} is a {record.type!r}, which "
                    f"{type(self.participant).__name__} has no @evolve method for",
                )
            return decoder.decode(record.data)
        except msgspec.DecodeError as error:
            raise JournalCorrupt(
                self.env.journal.path, f"{self.stream} record {record.seq}: {error}"
            ) from error

    def _replay(self, record: Record) -> None:
        event = self.decode(record)
        if isinstance(event, Handled):
            self._remember(event)
        else:
            self._apply(event)

    def _apply(self, change: Any) -> None:
        apply_change(self.participant, change)

    # -- messages ------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, GetState):
            return self._state_copy()  # asked: errors go back to the asker
        if self.env.dead.is_set():
            return None
        try:
            if self._stale:
                self._rebuild()
            if isinstance(message, Command):
                self._handle(message)
            elif isinstance(message, Deliver):
                self._react(message)
            elif isinstance(message, _Later):
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

    def _rebuild(self) -> None:
        self.env.journal.flush()  # let every pipelined append settle first
        self.load()
        self._stale = False
        logger.warning("participant %s rebuilt its state from the journal", self.name)

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
            cmd.reply_to(Began(cmd.saga_id, cmd.step, cmd.kind, cmd.attempt, time.time()))
        self._run(cmd)

    def _faulted(self, cmd: Command) -> bool:
        fault = self.env.faults.check(self.name, cmd.kind, cmd.name)
        if fault is None:
            return False
        if fault.kind == "delay":
            late = msgspec.structs.replace(cmd, delayed=True)
            self._later(cmd.saga_id, time.time() + fault.seconds, late)
        elif fault.kind == "fail" and cmd.kind == ACTION:
            self._commit(
                cmd, [], self._handled(cmd, HandledOutcome.FAILED, reason="injected failure")
            )
        else:
            self._send(cmd, "error", reason="injected error", retryable=True)
        return True

    def _run(self, cmd: Command) -> None:
        p = self.participant
        table = p._actions if cmd.kind == ACTION else p._compensations
        spec = table[cmd.name]
        ctx = StepContext(self.name, cmd.saga_id, cmd.step, cmd.kind, cmd.attempt, self._apply)
        try:
            args = self._arguments(spec, cmd)
            result = self._invoke(spec, ctx, args, cmd)
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
            if cmd.kind == ACTION:
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
            raw = msgspec.Raw(_encode(result)) if cmd.kind == ACTION else _NIL
            # The result as the journal gives it back, typed by the annotation: the same value
            # live, from a repeat's inbox record, and after a restart (and checked now).
            value = msgspec.msgpack.decode(raw, type=spec.returns) if cmd.kind == ACTION else None
            records = [self._encoded(c, cmd.key) for c in ctx.changes]
        except (msgspec.EncodeError, msgspec.ValidationError, TypeError, OverflowError) as error:
            self._undo(ctx, force=True)
            what = f"the result of {spec.method!r}"
            if isinstance(error, msgspec.ValidationError):
                what += f" as the {getattr(spec.returns, '__name__', spec.returns)} it declares"
            problem = PayloadError(what, error, saga_id=cmd.saga_id, step=cmd.step)
            # Nothing is recorded, so the step is in doubt like any technical failure: its
            # compensation leaves a tombstone against a copy of the command still on its way.
            self._send(cmd, "error", reason=str(problem), retryable=False)
            return
        self._commit(cmd, records, self._handled(cmd, HandledOutcome.OK, result=raw), value=value)

    def _invoke(self, spec: HandlerSpec, ctx: StepContext, args: list[Any], msg: Any) -> Any:
        """Run a handler (an async one on the portal), checked in check mode."""
        method = getattr(self.participant, spec.method)

        def call() -> Any:
            if spec.is_async:
                return self.env.portal.run_handler(method, ctx, args, msg)
            return method(ctx, *args)

        return call() if self._check is None else self._check.run(ctx, spec.method, call)

    def _arguments(self, spec: HandlerSpec, cmd: Command) -> list[Any]:
        args = [_convert(cmd.input, spec.arg_types[0])]
        if cmd.kind == COMPENSATION:
            did = self.inbox[f"{cmd.saga_id}/{cmd.step}/{ACTION}"]
            done = spec.arg_types[1]
            if done is Any:  # unannotated: what the action declared, as in Outcome.results
                done = self.participant._actions[cmd.name].returns
            args.append(decode_result(did.result, done))
        return args

    def _undo(self, ctx: StepContext, *, force: bool = False) -> None:
        if ctx.changes or force:
            self._rebuild()

    def _encoded(self, change: Any, key: str) -> Record:
        data = _encode(change)
        return self._record(type(change).__name__, data, key=key)

    def _handled(
        self, cmd: Command, outcome: HandledOutcome, *, result: msgspec.Raw = _NIL, reason: str = ""
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

    def _record(self, type_name: str, data: bytes, *, key: str, final: bool = False) -> Record:
        self.seq += 1
        return Record(self.stream, self.seq, type_name, data, time.time(), key, final)

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

    def _journal(
        self,
        saga_id: str,
        records: list[Record],
        handled: Handled | None,
        then: Callable[[], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        """Append the handler's changes and its inbox record in one batch; ``then`` runs once
        it is durable. An empty batch still waits for every earlier append (a repeat's answer
        must not overtake the commit of the original)."""
        if handled is not None:
            records.append(self._record(HANDLED, _encode(handled), key=handled.key))
            self._remember(handled)
        snapshot = None
        every = self.env.snapshot_every
        if records and every and (self.seq // every) != ((self.seq - len(records)) // every):
            snapshot = self._snapshot()

        def done(error: BaseException | None) -> None:
            if error is not None:
                self._stale = True
                failed(error)
                return
            self.env.crash.hit(CrashPoint.AFTER_COMMIT)
            then()
            self.env.commits.notify(saga_id)  # wake whoever watches this saga

        self.env.append(records, done, snapshot=snapshot)

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
        raw: msgspec.Raw = _NIL,
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

    # -- native choreography ------------------------------------------------------------------

    def _react(self, msg: Deliver) -> None:
        """Run the ``@on`` handler for a delivered event; publish its outbox once committed."""
        key = f"{msg.saga_id}/{msg.event_id}/{REACTION}"
        known = self.inbox.get(key)
        if known is not None:  # a repeat: republish the recorded outbox, apply nothing
            emitted = msgspec.msgpack.decode(known.result, type=list[Emitted])
            # If even the empty append fails, answer with nothing: the dispatcher counts
            # deliveries in flight, and the next delivery of the event will try again.
            empty = NativePublished(msg.saga_id, self.name, [], cause=msg.event_id)
            self._journal(
                msg.saga_id,
                [],
                None,
                lambda: self._dispatch(msg, emitted, None),
                lambda error: msg.reply_to(empty),
            )
            return
        spec = type(self.participant)._reactions.get(type(msg.event))
        if spec is None:  # answer all the same: the dispatcher counts deliveries in flight
            msg.reply_to(NativePublished(msg.saga_id, self.name, [], cause=msg.event_id))
            return
        ctx = StepContext(
            self.name, msg.saga_id, type(msg.event).__name__, REACTION, msg.attempt, self._apply
        )
        try:
            event = _convert(msg.event, spec.arg_types[0])
            self._invoke(spec, ctx, [event], msg)
            undeclared = sorted(
                {type(e).__name__ for e in ctx.published if type(e) not in spec.emits}
            )
            if undeclared:
                raise DefinitionError(
                    type(self.participant).__name__,
                    f"{spec.method!r} published {', '.join(undeclared)}, not in its @on(emits=...)",
                )
            emitted = [
                Emitted(
                    event_id(msg.saga_id, self.name, msg.event_id, i),
                    type(e).__name__,
                    msgspec.Raw(_encode(e)),
                )
                for i, e in enumerate(ctx.published)
            ]
            records = [self._encoded(c, key) for c in ctx.changes]
        except UnrecordedChange as unrecorded:  # a bug in the handler: retrying cannot help
            self._undo(ctx, force=True)
            why = str(unrecorded)
            msg.reply_to(NativePublished(msg.saga_id, self.name, [], error=why, cause=msg.event_id))
            return
        except Exception as error:  # noqa: BLE001 - a user's handler may raise anything
            self._undo(ctx)
            self._react_failed(
                msg,
                f"{spec.method!r} on {type(msg.event).__name__}: {type(error).__name__}: {error}",
            )
            return
        handled = Handled(
            key=key,
            saga_id=msg.saga_id,
            step=type(msg.event).__name__,
            kind=REACTION,
            outcome=HandledOutcome.OK,
            result=msgspec.Raw(_encode(emitted)),
        )
        self._journal(
            msg.saga_id,
            records,
            handled,
            lambda: self._dispatch(msg, emitted, ctx.published),
            lambda error: self._react_failed(msg, f"journal: {error}"),
        )

    def _react_failed(self, msg: Deliver, problem: str) -> None:
        """Technical trouble: try the delivery again a few times, then report it (stuck)."""
        if msg.attempt < _REACTION_ATTEMPTS:
            again = msgspec.structs.replace(msg, attempt=msg.attempt + 1)
            self._later(msg.saga_id, time.time() + 0.01 * 2 ** (msg.attempt - 1), again)
            return
        msg.reply_to(
            NativePublished(msg.saga_id, self.name, [], None, error=problem, cause=msg.event_id)
        )

    def _dispatch(self, msg: Deliver, emitted: list[Emitted], events: list[Any] | None) -> None:
        self.env.crash.hit(CrashPoint.BEFORE_DISPATCH)
        msg.reply_to(NativePublished(msg.saga_id, self.name, emitted, events, cause=msg.event_id))

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
        retry = retryable or cmd.kind == COMPENSATION
        if outcome == "error" and retry and tries < cmd.policy.max_attempts:
            due = time.time() + cmd.policy.delay(tries)
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
                event = SagaStepFailed(
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

    def _snapshot(self) -> Snapshot | None:
        try:
            state = msgspec.Raw(_encode(self.participant.state))
            data = _encode(ParticipantSnapshot(state, list(self.inbox.values())))
        except (msgspec.EncodeError, TypeError) as error:
            logger.warning("participant %s: state cannot be snapshotted: %s", self.name, error)
            return None
        return Snapshot(self.stream, self.seq, data)


def _fenced(did: Handled | None) -> str:
    """What a fence found: the step ``completed``, ``failed``, or never ran (``refused``)."""
    if did is None:
        return "refused"
    return "completed" if did.outcome is HandledOutcome.OK else "failed"


def _convert(value: Any, wanted: Any) -> Any:
    """``value`` as the handler's annotated type (a no-op when it already is one)."""
    if wanted is Any:
        return value
    try:
        if isinstance(value, wanted):
            return value
    except TypeError:
        pass  # a parametrised generic: let msgspec check it
    return msgspec.convert(value, wanted, from_attributes=True)
