"""Looking inside a running engine: what it holds in memory, a participant's state, the sagas
its journal knows. Read-only, for ``Runtime.footprint``, ``Runtime.state`` and
``Runtime.saga_ids``; the actors answer by message (``ask``), never by a shared table."""

from __future__ import annotations

from typing import Any

import pykka

from .actor_messages import CountSagas, GetState
from .engine import Engine
from .names import SAGA_PREFIX, participant_stream, saga_id_of
from .observe import Footprint

__all__ = ["footprint", "participant_state", "saga_ids"]


def footprint(engine: Engine) -> Footprint:
    """What the engine holds in memory and snapshots now: bounded by live work."""
    hosts = engine.catalog.hosts
    inbox = {name: len(host.inbox) for name, host in hosts.items()}
    snapshots = {}
    for name in hosts:
        snapshot = engine.journal.load_snapshot(participant_stream(name))
        snapshots[name] = len(snapshot.data) if snapshot is not None else 0
    counts = [int(ref.ask(CountSagas(), block=True)) for ref in engine.drivers if ref.is_alive()]
    return Footprint(
        sagas=sum(counts),
        waiters=len(engine.outcomes),
        inbox=inbox,
        snapshot_bytes=snapshots,
    )


def participant_state(engine: Engine, participant: str) -> Any:
    """A copy of a participant's current state."""
    ref = engine.catalog.ref(participant)
    try:
        answer = ref.ask(GetState(), block=False)
        engine.kinds.settle(lambda: answer._result is not None)  # type: ignore[attr-defined]
        return answer.get()
    except pykka.ActorDeadError as error:
        raise engine.actors_gone() from error


def saga_ids(engine: Engine) -> list[str]:
    """Every saga id the journal knows."""
    return [saga_id_of(s) or s for s in engine.journal.streams(SAGA_PREFIX)]
