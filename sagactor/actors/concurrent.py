"""A participant host that runs up to ``max_concurrency`` handler calls at once.

A participant's host runs one handler at a time by default (one mailbox, one thread), which
is what makes its state a plain fold. A participant that mostly waits on the outside world
(a payment gateway that takes 5 calls at once) declares ``max_concurrency = 5``; its host
then:

* keeps everything that is state on its own turn, as before: the inbox (a repeat is answered
  from it, a compensation that came first leaves a tombstone), the journal appends, the
  replies. Only the handler call moves to a thread of its own;
* runs at most ``max_concurrency`` calls at once and parks the other commands, first come first
  served (the coordinator's schedule timeout measures that wait, as a busy mailbox's: ``Began``
  is reported when a call really starts);
* runs one call per saga at a time: a saga's next command (a resend, its compensation) waits
  for the call in flight, so it is answered from that call's inbox record, exactly as the
  one-at-a-time host would answer it;
* applies a call's ``ctx.record`` changes when the call returns, on its turn, in the order calls
  end (the journal's order). A handler therefore does not see its own changes, nor those of
  calls that run beside it: use it for changes that commute (a log, a count), not for a stock
  that two calls could both take the last of;
* skips check mode's state comparison (several handlers share the state while they run).

The limit is per runtime, one host per participant. Across processes sharing a PostgreSQL
journal, only the active runtime runs sagas, so it is the limit of the deployment. Under a
simulation (the deterministic kind) calls run one at a time, inline.
"""

from __future__ import annotations

import collections
import functools
import threading
from typing import Any

from ..actor_messages import Command
from ..errors import DefinitionError
from .environment import Environment
from .host import ParticipantHost
from .kinds import ActorKind
from .participant import HandlerSpec, Participant, StepContext

__all__ = ["ConcurrentHost", "concurrency_of"]


def concurrency_of(participant: Participant[Any]) -> int:
    """The participant's ``max_concurrency``, checked (a whole number, at least 1)."""
    limit = type(participant).max_concurrency
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise DefinitionError(
            participant.participant_name,
            f"max_concurrency must be a whole number of at least 1, not {limit!r}",
            kind="participant",
        )
    return limit


def _deferred(change: Any) -> None:
    """``ctx.record`` while several calls run: the change is applied when the call returns."""


class ConcurrentHost(ParticipantHost):
    """Hosts a participant whose handler calls may overlap, up to its ``max_concurrency``."""

    def __init__(self, kind: ActorKind, participant: Participant[Any], env: Environment) -> None:
        super().__init__(kind, participant, env)
        self.limit = concurrency_of(participant)
        self._check = None  # a state comparison around one call means nothing beside others
        self._busy: set[str] = set()  # sagas with a call running
        self._parked: collections.deque[Command] = collections.deque()
        self._ended_later: set[str] = set()  # ended while a command of theirs was parked

    def _handle(self, cmd: Command) -> None:
        if cmd.saga_id in self._busy or len(self._busy) >= self.limit:
            self._parked.append(cmd)
            return
        super()._handle(cmd)

    def _run(self, cmd: Command) -> None:
        spec, ctx = self._context(cmd, _deferred)
        try:
            args = self._arguments(spec, cmd)
        except Exception as error:  # noqa: BLE001 - answered as the handler's own error
            self._finish(cmd, spec, ctx, None, error)
            return
        self._busy.add(cmd.saga_id)
        call = functools.partial(self._call, spec, ctx, args, cmd)
        threading.Thread(target=call, name=f"sagactor-{self.name}", daemon=True).start()

    def _call(self, spec: HandlerSpec, ctx: StepContext, args: list[Any], cmd: Command) -> None:
        """On the call's own thread: run the handler, then hand the outcome to the host."""
        result: Any = None
        error: BaseException | None = None
        try:
            result = self._invoke(spec, ctx, args, cmd)
        except BaseException as caught:  # noqa: BLE001 - re-raised on the host's turn
            error = caught
        self.on_turn(self._returned, (spec, ctx, cmd, result, error))

    def _returned(self, outcome: tuple[HandlerSpec, StepContext, Command, Any, Any]) -> None:
        spec, ctx, cmd, result, error = outcome
        self._busy.discard(cmd.saga_id)
        try:
            if error is None and not self.env.dead.is_set():
                try:
                    for change in ctx.changes:
                        self._apply(change)
                except Exception as failed:  # noqa: BLE001 - an evolver's bug fails the step
                    error = failed
            self._finish(cmd, spec, ctx, result, error)
        finally:
            self._unpark()

    def _unpark(self) -> None:
        """Start the parked commands that may run now, the longest parked first."""
        while self._parked and len(self._busy) < self.limit:
            cmd = next((c for c in self._parked if c.saga_id not in self._busy), None)
            if cmd is None:
                break
            self._parked.remove(cmd)
            super()._handle(cmd)
        for saga_id in list(self._ended_later):
            if saga_id not in self._busy and all(c.saga_id != saga_id for c in self._parked):
                self._ended_later.discard(saga_id)
                super()._saga_ended(saga_id)

    def _saga_ended(self, saga_id: str) -> None:
        if saga_id in self._busy or any(c.saga_id == saga_id for c in self._parked):
            self._ended_later.add(saga_id)  # its records answer what is still parked
            return
        super()._saga_ended(saga_id)
