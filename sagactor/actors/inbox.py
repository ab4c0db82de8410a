"""A participant's journal stream and idempotent inbox, kept by the actor that hosts it.

Its state and inbox are the fold of its stream (from the latest snapshot); a handler's changes
and the record "message M handled, with result R" go in one append, and whatever waits for that
answer runs only once the append is durable. Appends are pipelined (the actor does not wait for
the disk); the journal's per-stream sequence numbers make every append after a failed one fail
too, and the actor then rebuilds its state from the journal rather than trust its memory.

The inbox holds only live sagas' records (so memory and snapshots are bounded by live work).
A saga's records are dropped when its driver says :class:`SagaEnded`, which it sends after
every command of the saga, so no copy of a message of that saga can arrive later: except a copy
this host scheduled for itself (a delay fault, a choreography retry), which is why those are
counted per saga and keep the records until the last one has landed. At startup nothing is in
the air: the records of sagas whose journal says they ended are dropped at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from .. import clock
from ..actor_messages import Later
from ..crashpoints import CrashPoint
from ..errors import JournalCorrupt
from ..messages import ENDED_EVENTS, Handled, ParticipantSnapshot
from ..names import participant_stream, saga_stream
from ..persistence.journal import Record, Snapshot
from .environment import Environment
from .kinds import ActorKind, KindActor
from .participant import HandlerSpec, Participant, StepContext, apply_change
from .statecheck import StateCheck

__all__ = ["HANDLED", "NIL", "ParticipantInbox", "convert"]

logger = logging.getLogger("sagactor.participant")

HANDLED = "sagactor.Handled"
"""The record type of an inbox record in a participant's stream."""
NIL = msgspec.Raw(b"\xc0")  # msgpack's nil: the result of what returns nothing
_encode = msgspec.msgpack.encode
_decode_handled = msgspec.msgpack.Decoder(Handled).decode
_decode_snapshot = msgspec.msgpack.Decoder(ParticipantSnapshot).decode


class ParticipantInbox(KindActor):
    """The stream-keeping half of a participant's host (see :class:`ParticipantHost`)."""

    def __init__(self, kind: ActorKind, participant: Participant[Any], env: Environment) -> None:
        super().__init__(kind)
        self.participant = participant
        self.name = participant.participant_name
        self.env = env
        self.stream = participant_stream(self.name)
        self.inbox: dict[str, Handled] = {}
        self._keys: dict[str, list[str]] = {}  # saga id -> its inbox keys
        self._resends: dict[str, int] = {}  # saga id -> self-scheduled messages not yet landed
        self._ended: set[str] = set()  # ended, but waiting for its resends to land
        self.seq = 0
        self._snapped = 0  # the seq of the latest snapshot
        self._stale = False
        self._change_types = {cls.__name__: cls for cls in type(participant)._evolvers}
        self._decoders = {
            name: msgspec.msgpack.Decoder(cls) for name, cls in self._change_types.items()
        }
        self._check = StateCheck(participant, self._apply) if env.check_state else None
        self.load(startup=True)

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
        self._snapped = self.seq
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
        late, me = Later(saga_id, message), self.actor_ref
        self.env.timers.schedule(due, lambda: self.env.tell(me, late))

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

    def _rebuild(self) -> None:
        self.env.journal.flush()  # let every pipelined append settle first
        self.load()
        self._stale = False
        logger.warning("participant %s rebuilt its state from the journal", self.name)

    def _undo(self, ctx: StepContext, *, force: bool = False) -> None:
        if ctx.changes or force:
            self._rebuild()

    def _encoded(self, change: Any, key: str) -> Record:
        data = _encode(change)
        return self._record(type(change).__name__, data, key=key)

    def _record(self, type_name: str, data: bytes, *, key: str, final: bool = False) -> Record:
        self.seq += 1
        return Record(self.stream, self.seq, type_name, data, clock.now(), key, final)

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
            snapshot = self._due_snapshot()

        def done(error: BaseException | None) -> None:
            if error is not None:
                self._stale = True
                failed(error)
                return
            self.env.crash.hit(CrashPoint.AFTER_COMMIT)
            then()
            self.env.commits.notify(saga_id)  # wake whoever watches this saga

        if self.env.relaxed:  # relaxed durability: reply without waiting for the disk
            self.env.append_relaxed(records, snapshot=snapshot)
            done(None)
            return
        # A success only replies (a message, built from what is already decided), so it goes
        # out from the journal's thread at once, without a hop through this actor's mailbox
        # (unless a simulation wants it on this actor's turn); a failure marks the state
        # stale and may schedule a retry: host state, so the host's own turn.
        off_turn = self.kind.replies_off_turn

        def answer(error: BaseException | None) -> None:
            if error is None and off_turn:
                done(None)
            else:
                self.on_turn(done, error)

        self.env.append(records, answer, snapshot=snapshot)

    def _due_snapshot(self) -> Snapshot | None:
        """A snapshot, unless fewer records were written since the last one than it would hold
        inbox records. With more sagas in flight than ``snapshot_every`` (10,000 resumed at
        once), one at every multiple would encode the whole live inbox again and again (1.5 MB
        each time); so its cost per record stays constant, and the tail a restart folds stays
        proportional to the live inbox."""
        if self.seq - self._snapped < len(self.inbox):
            return None
        snapshot = self._snapshot()
        if snapshot is not None:
            self._snapped = self.seq
        return snapshot

    def _snapshot(self) -> Snapshot | None:
        try:
            state = msgspec.Raw(_encode(self.participant.state))
            data = _encode(ParticipantSnapshot(state, list(self.inbox.values())))
        except (msgspec.EncodeError, TypeError) as error:
            logger.warning("participant %s: state cannot be snapshotted: %s", self.name, error)
            return None
        return Snapshot(self.stream, self.seq, data)

    def _invoke(self, spec: HandlerSpec, ctx: StepContext, args: list[Any], msg: Any) -> Any:
        """Run a handler (an async one on the portal), checked in check mode."""
        method = getattr(self.participant, spec.method)

        def call() -> Any:
            if spec.is_async:
                return self.env.portal.run_handler(method, ctx, args, msg)
            return method(ctx, *args)

        with self.env.listeners.scope(ctx.saga_id, ctx.step, ctx.kind):  # a tracer's span
            return call() if self._check is None else self._check.run(ctx, spec.method, call)


def convert(value: Any, wanted: Any) -> Any:
    """``value`` as the handler's annotated type (a no-op when it already is one)."""
    if wanted is Any:
        return value
    try:
        if isinstance(value, wanted):
            return value
    except TypeError:
        pass  # a parametrised generic: let msgspec check it
    return msgspec.convert(value, wanted, from_attributes=True)
