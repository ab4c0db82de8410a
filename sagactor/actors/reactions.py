"""Native choreography in a participant's host: run the ``@on`` reaction to a delivered event,
and publish its outbox (the events it published) once its inbox record is durable.

A repeat of a delivery applies nothing and republishes the recorded outbox; technical trouble
is retried a few times, then reported (the saga is stuck until resumed).
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from .. import clock
from ..actor_messages import Deliver, NativePublished
from ..crashpoints import CrashPoint
from ..errors import DefinitionError, UnrecordedChange
from ..messages import Emitted, Handled, HandledOutcome
from ..names import REACTION
from ..sagas.native import event_id
from .inbox import ParticipantInbox, convert
from .kinds import ThreadKind
from .nested import run_saga
from .participant import StepContext

__all__ = ["ReactingInbox"]

_REACTION_ATTEMPTS = 3
_encode = msgspec.msgpack.encode


class ReactingInbox(ParticipantInbox):
    """A participant's inbox that also runs its ``@on`` reactions."""

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
        if isinstance(self.kind, ThreadKind):  # a thread of its own: it may wait for a saga
            ctx.runner = functools.partial(run_saga, self.env, self.name, spec.runs)
        try:
            event = convert(msg.event, spec.arg_types[0])
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
            self._later(msg.saga_id, clock.now() + 0.01 * 2 ** (msg.attempt - 1), again)
            return
        msg.reply_to(
            NativePublished(msg.saga_id, self.name, [], None, error=problem, cause=msg.event_id)
        )

    def _dispatch(self, msg: Deliver, emitted: list[Emitted], events: list[Any] | None) -> None:
        self.env.crash.hit(CrashPoint.BEFORE_DISPATCH)
        msg.reply_to(NativePublished(msg.saga_id, self.name, emitted, events, cause=msg.event_id))
