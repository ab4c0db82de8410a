"""How every new saga begins: its state and its first event, ``SagaStarted``. Pure.

A free start (:func:`~sagactor.sagas.machine.start`), a start that must wait for a slot
(:func:`~sagactor.sagas.queueing.start_queued`) and a fork
(:func:`~sagactor.sagas.forks.start_fork`) differ only in what follows this event, so the
event is built here once: its ``deadline`` is counted from the start (a queued saga's wait
counts toward it), and a fork's fields say where it came from.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..messages import SagaEvent, SagaStarted
from .definition import Saga
from .inputs import digest_key
from .state import SagaState, emit

__all__ = ["new_saga"]


def new_saga(
    definition: Saga,
    saga_id: str,
    mode: str,
    value: Any,
    raw: bytes,
    digest: str,
    now: float,
    *,
    origin: str = "",
    from_step: str = "",
    carried: dict[str, msgspec.Raw] | None = None,
) -> tuple[SagaState, list[SagaEvent]]:
    """A new saga's state, with ``SagaStarted`` emitted (applied) as its first event;
    ``origin``, ``from_step`` and ``carried``: a fork's (see :mod:`sagactor.sagas.forks`)."""
    state = SagaState(saga_id, definition, mode, value, digest_key(digest))
    started = SagaStarted(
        saga=definition.name,
        version=definition.version,
        mode=mode,
        input=msgspec.Raw(raw),
        digest=digest,
        deadline=now + definition.deadline if definition.deadline else 0.0,
        origin=origin,
        from_step=from_step,
        carried=dict(carried or {}),
    )
    events: list[SagaEvent] = []
    emit(state, events, started)
    return state, events
