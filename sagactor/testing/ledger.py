"""A counting ledger: a participant that counts every effect it applies, for effectively-once
checks in your own tests.

Its action ``do`` records ``Did(key)`` and its compensation records ``Undid(key)``, keyed by the
step's idempotency key, so after any crashes and restarts the state says how often each step's
effect was applied and undone: once each at most, or a guarantee broke. An input with a
``fail_at`` attribute naming the step makes that step fail for good (a business failure, the
same on every delivery), so a saga completes or compensates deterministically::

    ledgers = [CountingLedger(f"p{i}") for i in range(3)]
    ...
    state = rt.state("p0")
    assert not state.repeated()
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..actors.participant import Participant, StepContext, action, compensation, evolve
from ..errors import StepFailed

__all__ = ["CountingLedger", "Did", "LedgerState", "Undid"]


class Did(msgspec.Struct, frozen=True):
    """The action's effect, for the step whose idempotency key is ``key``."""

    key: str


class Undid(msgspec.Struct, frozen=True):
    """The compensation's effect, undoing the action of ``key``."""

    key: str


class LedgerState(msgspec.Struct):
    applied: dict[str, int] = {}  # idempotency key -> times its action's effect was applied
    undone: dict[str, int] = {}  # idempotency key -> times its compensation's effect was
    log: list[str] = []  # every effect in order: "<key>" or "undo <key>"

    def repeated(self) -> list[str]:
        """The keys whose effect was applied or undone more than once (should be none)."""
        return sorted(
            {k for k, n in self.applied.items() if n > 1}
            | {k for k, n in self.undone.items() if n > 1}
        )


class CountingLedger(Participant[LedgerState]):
    """Counts its effects by idempotency key (see the module's docs); ``name`` is its name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> LedgerState:
        return LedgerState()

    @action("do")
    def do(self, ctx: StepContext, value: Any) -> str:
        if getattr(value, "fail_at", None) == ctx.step:
            raise StepFailed(f"{ctx.step} refuses {value!r}")
        ctx.record(Did(ctx.idempotency_key))
        return ctx.idempotency_key

    @compensation("do")
    def undo(self, ctx: StepContext, value: Any, done: str) -> None:
        ctx.record(Undid(done))

    @evolve
    def _did(self, state: LedgerState, change: Did) -> None:
        state.applied[change.key] = state.applied.get(change.key, 0) + 1
        state.log.append(change.key)

    @evolve
    def _undid(self, state: LedgerState, change: Undid) -> None:
        state.undone[change.key] = state.undone.get(change.key, 0) + 1
        state.log.append("undo " + change.key)
