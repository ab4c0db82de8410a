"""``Runtime.restart(id, from_step=...)``: fork an ended saga as a new one, from its first step
or part-way, live (:func:`restart`) or on a journal no runtime holds (:func:`fork_offline`,
``sagactor inspect DB restart``).

The fork's id derives from the old one (``<id>~<n>``, the first free ``n``); its
``SagaStarted`` names its origin, the step it began at and the results it carries. Which steps
a fork may carry and whose compensation undoes them: :mod:`sagactor.sagas.forks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from . import clock
from .cluster.view import require_active
from .codec import encode_event
from .errors import OperationRefused, UnknownSaga
from .messages import FINAL_EVENTS, SagaEvent, SagaStarted, event_name
from .names import NATIVE, saga_stream
from .persistence.journal import Journal, Record
from .persistence.recovery import decode_saga_events
from .persistence.summaries import ENDED_STATUSES
from .sagas.definition import Choreography, Saga
from .sagas.forks import Fork, plan_fork, start_fork

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["fork_id", "fork_offline", "plan_restart", "restart"]


def plan_restart(
    journal: Journal,
    definitions: Mapping[str, Saga | Choreography],
    saga_id: str,
    from_step: str | None,
) -> tuple[Saga | Choreography, SagaStarted, Fork | None]:
    """The definition a restart of ``saga_id`` runs under (the latest of its name), the old
    saga's start, and the fork (``None`` for a native choreography, which restarts whole).

    Raises:
        UnknownSaga: No such saga.
        OperationRefused: It has not ended, its events were pruned, or ``from_step`` cannot
            begin a fork (see :func:`~sagactor.sagas.forks.plan_fork`).
    """
    row = journal.saga_row(saga_id)
    if row is None:
        raise UnknownSaga(saga_id)
    if row.status not in ENDED_STATUSES:
        hint = "resolve or resume it first" if row.status == "stuck" else "cancel it first"
        raise OperationRefused(
            "restart",
            f"saga {saga_id!r} is {row.status}, not ended (completed, compensated or "
            f"cancelled): {hint}",
        )
    records = journal.read(saga_stream(saga_id))
    if not records:
        raise OperationRefused("restart", f"saga {saga_id!r} was pruned: its input is gone")
    events = decode_saga_events(journal, records)
    started = events[0]
    assert isinstance(started, SagaStarted)
    definition = definitions.get(row.type)
    if definition is None:
        raise OperationRefused("restart", f"no definition named {row.type!r} is registered")
    if isinstance(definition, Choreography):
        if from_step is not None:
            raise OperationRefused(
                "restart",
                f"saga {saga_id!r} is a native choreography (no steps to begin at): restart "
                "it whole (from_step=None)",
            )
        return definition, started, None
    return definition, started, plan_fork(definition, saga_id, events, from_step)


def fork_id(journal: Journal, saga_id: str) -> str:
    """``<saga_id>~<n>`` for the first ``n`` that no saga uses (nor used: pruned ones count)."""
    n = 1
    while journal.saga_row(f"{saga_id}~{n}") is not None or journal.last_seq(
        saga_stream(f"{saga_id}~{n}")
    ):
        n += 1
    return f"{saga_id}~{n}"


def restart(engine: Engine, saga_id: str, from_step: str | None) -> str:
    """Start the fork through the runtime's coordinator; its id once it is journaled."""
    require_active(engine, "restart")
    engine.check_open()
    definitions = engine.catalog.definitions
    definition, started, fork = plan_restart(engine.journal, definitions, saga_id, from_step)
    value: Any = msgspec.msgpack.decode(started.input)
    mode: Any = "orchestration" if started.mode == NATIVE else started.mode
    new_id = fork_id(engine.journal, saga_id)
    (start,) = engine.submit(definition, [value], [new_id], mode, fork=fork)
    try:
        return start.accepted.result()
    finally:
        engine.settle([start.accepted])


def fork_offline(
    journal: Journal,
    definitions: Mapping[str, Saga | Choreography],
    saga_id: str,
    from_step: str | None,
) -> tuple[str, list[str]]:
    """:func:`restart` on a journal no runtime holds: the fork's first events are appended,
    and the runtime that next opens the journal recovers it and runs it. Returns the fork's id
    and the event types written.

    Raises:
        OperationRefused: as :func:`plan_restart`, and for a native choreography (its start
            needs the runtime's dispatcher: restart it from Python).
    """
    definition, started, fork = plan_restart(journal, definitions, saga_id, from_step)
    if fork is None or not isinstance(definition, Saga):
        raise OperationRefused(
            "restart", f"saga {saga_id!r} is a native choreography: restart it from a runtime"
        )
    raw = bytes(started.input)
    value: Any = msgspec.msgpack.decode(raw, type=definition.input_type or Any)
    new_id, now = fork_id(journal, saga_id), clock.now()
    _, events = start_fork(definition, new_id, started.mode, value, raw, started.digest, now, fork)
    names = [event_name(event) for event in events]
    journal.append_and_wait(_records(new_id, events, names, now, f"{saga_id}/restart"))
    return new_id, names


def _records(
    saga_id: str, events: list[SagaEvent], names: list[str], now: float, cause: str
) -> list[Record]:
    stream = saga_stream(saga_id)
    return [
        Record(stream, seq, name, encode_event(event), now, cause, name in FINAL_EVENTS)
        for seq, (name, event) in enumerate(zip(names, events, strict=True), start=1)
    ]
