"""Cancelling a natively choreographed saga: the pure parts (see the dispatcher for the flow).

``workflow.cancel_plan`` reads the workflow graph once per cancel: after which events a cancel is
too late (the workflow can no longer fail: past its point of no return) or moot (it can no
longer complete: it already undoes itself). :func:`cancel_refusal` applies it once every
delivery in flight was answered, and :func:`native_cancel` gives the journal events of a cancel
that goes ahead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from ..actor_messages import NativePublished
from ..messages import EventDispatched, SagaCancelled, SagaEvent
from .native import CANCEL_SOURCE, NativeState, event_id

__all__ = ["cancel_refusal", "native_cancel"]


def native_cancel(state: NativeState, event: Any, reason: str) -> list[SagaEvent]:
    """The journal events of a cancel: the request, then its event, dispatched like any other
    (from ``CANCEL_SOURCE``). Nothing once the saga ended or was cancelled already."""
    if state.status.terminal or state.cancel_at >= 0:
        return []
    events: list[SagaEvent] = [
        SagaCancelled(reason=reason),
        EventDispatched(
            event_id=event_id(state.saga_id, CANCEL_SOURCE, "", 0),
            event_type=type(event).__name__,
            data=msgspec.Raw(msgspec.msgpack.encode(event)),
            source=CANCEL_SOURCE,
        ),
    ]
    for journaled in events:
        state.evolve(journaled)
    return events


def cancel_refusal(
    state: NativeState,
    held: Iterable[NativePublished],
    too_late: frozenset[str],
    moot: frozenset[str],
) -> str:
    """Why a cancel must not be applied now (empty if it must), once every delivery in flight
    was answered (``held``: the outboxes that arrived meanwhile). ``too_late`` and ``moot`` come
    from :func:`cancel_plan`."""
    held = list(held)
    if state.status.terminal:
        return f"the saga already ended ({state.status})"
    if any(m.error for m in held):
        return "a reaction failed meanwhile (the saga is stuck: resume it, then cancel)"
    kinds = [d.event_type for d in state.dispatched] + [e.type for m in held for e in m.emitted]
    late = [k for k in kinds if k in too_late]
    if late:
        return f"it passed its point of no return ({late[0]} was published): it completes"
    undoing = [k for k in kinds if k in moot]
    if undoing:
        return f"it already undoes its work ({undoing[0]} was published)"
    return ""
