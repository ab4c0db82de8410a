"""Hybrid flows, the reaction's side: a native choreography's ``@on`` reaction runs an
orchestrated saga and waits for its end (``ctx.run_saga``).

The saga's id derives from the reaction's (``<choreography id>/<participant>.<event>``), so a
redelivered event (after a crash, before the reaction's inbox record was written) finds the
run its first delivery started instead of starting a second one: the start is idempotent by
id and input, and an ended run's outcome is read back from the journal. The reaction's thread
waits meanwhile (a participant's host has a thread of its own), so the saga must not need the
reacting participant itself: its command would queue behind the waiting reaction for ever.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import msgspec

from ..actor_messages import StartSaga
from ..errors import DefinitionError, RuntimeCrashed
from ..messages import Outcome
from ..names import saga_stream
from ..persistence.recovery import decode_saga_events
from ..sagas.definition import Saga
from ..sagas.fold import summarize
from ..sagas.inputs import input_digest, prepare_input
from .environment import Environment

__all__ = ["StartNested", "run_saga"]


class StartNested(msgspec.Struct, frozen=True):
    """A reaction's start of an orchestrated saga: refused unless its definition is
    registered (a recovery must find it)."""

    start: StartSaga


def run_saga(
    env: Environment,
    participant: str,
    declared: tuple[Any, ...],
    saga_id: str,
    saga: Saga,
    value: Any,
    timeout: float | None,
) -> Outcome:
    """Start ``saga`` under ``saga_id`` (or find it), wait for its end, return its outcome.
    ``declared``: the sagas the reaction's ``@on(runs=...)`` names (empty: any)."""
    if not isinstance(saga, Saga):
        raise DefinitionError(repr(saga), "ctx.run_saga runs a Saga (an orchestrated one)")
    if declared and saga not in declared:
        names = ", ".join(repr(getattr(s, "name", s)) for s in declared)
        raise DefinitionError(
            saga.name, f"is not among the sagas the reaction declares @on(runs=...): {names}"
        )
    if any(step.participant == participant for step in saga.steps):
        raise DefinitionError(
            saga.name,
            f"has a step at {participant!r}, whose reaction waits for it: its command would "
            "wait behind the reaction for ever (run it from another participant)",
        )
    value, raw = prepare_input(saga, value)
    outcomes = env.outcomes
    completion = outcomes.wait(saga_id)  # first: an end after this reaches us, before is journaled
    try:
        accepted: Future[str] = Future()
        start = StartSaga(
            definition=saga,
            saga_id=saga_id,
            mode="orchestration",
            input=value,
            raw=raw,
            digest=input_digest(raw),
            fresh=False,
            accepted=accepted,
        )
        env.tell(env.coordinator, StartNested(start))
        _settled(accepted, env, timeout)  # a conflict, an unregistered definition: raised here
        records = env.journal.read(saga_stream(saga_id))
        if records and records[-1].final:  # it ended before we waited
            return summarize(saga_id, decode_saga_events(env.journal, records)).outcome()
        outcome: Outcome = completion.result(timeout)
        return outcome
    finally:
        outcomes.release(saga_id, completion)


def _settled(accepted: Future[str], env: Environment, timeout: float | None) -> None:
    """Wait for the start's answer, which a dead runtime never gives: then raise why."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            accepted.result(_POLL)
            return
        except TimeoutError:
            failure = env.outcomes.failure
            if failure is not None:
                raise failure from None
            if env.dead.is_set():
                raise RuntimeCrashed("the runtime died while a reaction waited") from None
            if deadline is not None and time.monotonic() > deadline:
                raise


_POLL = 0.05  # seconds between looks at whether the runtime died
