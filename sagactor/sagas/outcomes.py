"""A saga's outcome from its state, and journaled results typed as their actions declare. Pure.

The callers waiting for outcomes meet them on :class:`~sagactor.actors.outcomes.OutcomeBoard`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import msgspec

from ..messages import Outcome, SagaStatus
from ..names import COMPENSATION
from .children import result_key
from .definition import Saga
from .machine import SagaState
from .native import NativeState
from .waits import describe

__all__ = ["ResultTypes", "decode_result", "earlier_results", "outcome_of", "result_type"]

ResultTypes = Mapping[tuple[str, str], Any]
"""``(participant, action) -> the type its action declares it returns``."""
# What a step with no earlier results reads: one read-only mapping shared by every such
# command, not an empty dict per command (a saga held at its first step keeps its command).
_NO_RESULTS: Final[Mapping[str, Any]] = MappingProxyType({})


def decode_result(raw: msgspec.Raw | bytes, wanted: Any) -> Any:
    """A journaled result as the action's declared type; untyped if it no longer fits it."""
    try:
        return msgspec.msgpack.decode(raw, type=wanted)
    except msgspec.ValidationError:  # the declaration changed since the result was journaled
        return msgspec.msgpack.decode(raw)


def result_type(types: ResultTypes, definition: Saga, step: str) -> Any:
    """The type a step's result decodes to (``Any`` for an unknown step or participant)."""
    try:
        known = definition.step(step)
    except KeyError:
        return Any
    if known.pause is not None:  # a WaitFor's payload, as it declares it; a Sleep's None
        return known.pause.type if known.pause.type is not None else Any
    if known.child is not None:  # the type of the child's result step (see Catalog.define)
        return types.get(result_key(known.child), Any)
    return types.get((known.participant, known.action), Any)


def earlier_results(
    state: SagaState, step: str, kind: str, types: ResultTypes | None = None
) -> Mapping[str, Any]:
    """What a command of ``step`` reads as ``ctx.results``: the results of the steps before
    it (a compensation: and its own), each decoded afresh from the journal as its action
    declares it. The saga's journaled state alone decides it, so it is the same live, on a
    resend and after a restart."""
    definition = state.definition
    names = list(definition.before(step))
    if kind == COMPENSATION:
        names.append(step)
    if not names:
        return _NO_RESULTS
    return {
        name: decode_result(state.raws[name], result_type(types or {}, definition, name))
        for name in names
        if name in state.raws
    }


def outcome_of(state: SagaState | NativeState, types: ResultTypes | None = None) -> Outcome:
    """The saga's outcome; journaled results decode to the type their action declares, so
    an outcome read after a restart equals the live one."""
    if isinstance(state, NativeState):
        return state.outcome()
    results = {
        step: decode_result(value, result_type(types or {}, state.definition, step))
        if isinstance(value, msgspec.Raw)
        else value
        for step, value in state.results.items()
    }
    reason = state.reason or describe(state)
    if state.held and state.status is SagaStatus.RUNNING:  # a child saga, done
        reason = f"done; held until its parent {state.parent!r} ends"
    if state.retrying and not state.status.terminal:  # visible while it waits to retry
        retrying = f"retrying {state.last_error}"
        reason = f"{reason}; {retrying}" if reason else retrying
    return Outcome(
        saga_id=state.saga_id,
        saga=state.definition.name,
        status=state.status,
        reason=reason,
        results=results,
        compensated=tuple(state.compensated),
    )
