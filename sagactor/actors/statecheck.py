"""Check mode: catch a handler that changes ``self.state`` without ``ctx.record``.

Such a change works live and is lost when the journal reopens, because the state is the fold
of the recorded changes. In check mode (``Runtime(check_state=True)``, or every runtime once
``sagactor.testing.check_state()`` was called) the host copies the state before each handler,
applies the changes the handler recorded to that copy through the ``@evolve`` methods, and
compares the result with the state after the handler. A difference raises
:class:`~sagactor.errors.UnrecordedChange`: the step fails as a technical error that is not
retried, and the state is rebuilt from the journal.

It costs a deep copy, a replay of the changes and a comparison per handler: a mode for tests.
``@evolve`` methods run twice in it (live, and on the copy), so one with side effects outside
the state would be noticed too.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from ..errors import UnrecordedChange
from .participant import Participant, StepContext
from .portal import HandlerCancelled

__all__ = ["StateCheck", "default", "set_default"]

logger = logging.getLogger("sagactor.participant")

T = TypeVar("T")
_DEFAULT = [False]  # the check mode of runtimes created without check_state=


def default() -> bool:
    return _DEFAULT[0]


def set_default(enabled: bool) -> bool:
    """Turn check mode on (or off) for runtimes created from now on; returns the old value."""
    old, _DEFAULT[0] = _DEFAULT[0], bool(enabled)
    return old


class StateCheck:
    """Runs a participant's handlers and compares what they changed with what they recorded."""

    def __init__(self, participant: Participant[Any], apply: Callable[[Any], None]) -> None:
        self.participant = participant
        self.apply = apply  # applies one change to ``participant.state`` (the host's _apply)
        self._warned = False

    def run(self, ctx: StepContext, handler: str, invoke: Callable[[], T]) -> T:
        """``invoke()``, then raise :class:`UnrecordedChange` if the state differs from the
        state before it plus its recorded changes (also when it raised)."""
        before = self._copy()
        try:
            result = invoke()
        except HandlerCancelled:
            raise  # cut short from outside: what it did is undone anyway
        except Exception as error:
            self._verify(before, ctx, handler, error)
            raise
        self._verify(before, ctx, handler, None)
        return result

    def _copy(self) -> Any:
        try:
            return copy.deepcopy(self.participant.state)
        except Exception as error:  # noqa: BLE001 - a state deepcopy cannot copy: no check
            self._cannot(f"its state cannot be copied ({error!r})")
            return _UNCHECKED

    def _verify(self, before: Any, ctx: StepContext, handler: str, cause: Exception | None) -> None:
        if before is _UNCHECKED:
            return
        p = self.participant
        live = p.state
        p.state = before  # the @evolve methods may use self.state as well as their argument
        try:
            for change in ctx.changes:
                self.apply(change)
            expected = p.state
        except Exception:  # noqa: BLE001 - it worked live: the @evolve is not deterministic
            expected = _UNCHECKED
        finally:
            p.state = live
        same = self._same(expected, live)
        if not same:
            problem = UnrecordedChange(ctx.participant, handler, ctx.saga_id, ctx.step)
            raise problem from cause

    def _same(self, expected: Any, live: Any) -> bool:
        if expected is _UNCHECKED:
            return False
        if expected is live:
            return True
        try:
            if msgspec.msgpack.encode(expected) == msgspec.msgpack.encode(live):
                return True
        except (msgspec.EncodeError, TypeError, OverflowError):
            pass
        if type(live).__eq__ is _IDENTITY:  # no value equality: only bytes can tell
            try:
                msgspec.msgpack.encode(live)
            except (msgspec.EncodeError, TypeError, OverflowError) as error:
                self._cannot(f"its state can be neither encoded nor compared ({error!r})")
                return True
            return False
        try:
            return bool(expected == live)  # e.g. sets encoded in another order
        except Exception:  # noqa: BLE001 - a user's __eq__
            return False

    def _cannot(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "participant %s: state checks are off: %s", self.participant.participant_name, why
            )


class _Unchecked:
    """Marks a state that could not be copied or replayed."""


_UNCHECKED: Any = _Unchecked()
_IDENTITY: Any = object.__eq__
