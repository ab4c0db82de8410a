"""Forking an ended saga part-way (``Runtime.restart(id, from_step=...)``): what a fork may
carry over and how it begins. Pure.

A fork is a new saga (its own id, stream and message keys) that begins at ``from_step`` with
the results of the steps before it carried over from the ended saga it was forked from (its
*origin*), journaled in the fork's ``SagaStarted`` (``origin``, ``from_step``, ``carried``).

The rule for whose compensation undoes what (a fork owns what it runs):

* A fork may carry only steps whose effects **still stand** in the origin: they succeeded there
  (or were carried into it) and the origin did not undo them (no ``StepCompensated``, no
  ``StepResolved(how="compensated")``; a step resolved as ``skipped`` was left standing). A
  fork of a compensated saga from a step after a compensated one is refused: it would build on
  an effect that no longer exists. Restart from an earlier step instead.
* If the fork fails, it compensates **only the steps it ran itself** (from ``from_step`` on),
  never the carried ones. They were done under the origin's message keys, which only the origin
  can undo (a participant's inbox has no action of the fork's to undo, so a compensation under
  the fork's key would leave a tombstone and run nothing), and the origin has ended with them
  standing: a completed origin's later steps rest on them too. A carried pivot makes the fork
  past its pivot from the start: it must complete, as its origin had to.

Like Temporal's reset, the fork starts from a point in the origin's history and replays nothing
before it; like DBOS's fork, it is a new run with a new id that reuses the earlier steps'
outputs. Unlike either, compensation ownership is explicit: the origin keeps what it ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import OperationRefused
from ..messages import SagaEvent, SagaStarted, StepCompensated, StepResolved, StepSucceeded
from .definition import Saga
from .machine import start_stage
from .starts import new_saga
from .state import SagaState

__all__ = ["Fork", "plan_fork", "standing", "start_fork"]


@dataclass(frozen=True, slots=True)
class Fork:
    """Where a fork comes from, where it begins, and the results it carries."""

    origin: str
    from_step: str
    carried: dict[str, msgspec.Raw] = field(default_factory=dict)


def standing(events: Iterable[SagaEvent]) -> dict[str, msgspec.Raw]:
    """The results of the steps whose effects still stand at the end of a saga's ``events``."""
    results: dict[str, msgspec.Raw] = {}
    for event in events:
        if isinstance(event, SagaStarted):
            results.update(event.carried)
        elif isinstance(event, StepSucceeded):
            results.setdefault(event.step, event.result)
        elif isinstance(event, StepCompensated) or (
            isinstance(event, StepResolved) and event.how == "compensated"
        ):
            results.pop(event.step, None)
    return results


def plan_fork(
    definition: Saga, origin: str, events: Iterable[SagaEvent], from_step: str | None
) -> Fork:
    """The fork of saga ``origin`` (its ``events``) from ``from_step`` (``None``: the first
    step, carrying nothing) under ``definition``.

    Raises:
        OperationRefused: ``from_step`` is not a step of ``definition``, is a member of a
            parallel group, or a step before it does not stand in the origin.
    """
    first = definition.steps[0].name
    start = first if from_step is None else from_step
    names = [step.name for step in definition.steps]
    if start not in names:
        raise OperationRefused(
            "restart", f"{definition.key} has no step {start!r} (its steps: {', '.join(names)})"
        )
    stage = definition.stages[definition.stage(start)]
    if len(stage) > 1:
        members = ", ".join(repr(step.name) for step in stage)
        raise OperationRefused(
            "restart",
            f"{start!r} runs in a parallel group ({members}): a fork begins at a stage, so "
            "restart from the step before the group (or from the first step)",
        )
    stands = standing(events)
    carried: dict[str, msgspec.Raw] = {}
    for name in definition.before(start):
        if name not in stands:
            raise OperationRefused(
                "restart",
                f"step {name!r} of saga {origin!r} does not stand (it was compensated, or it "
                f"never succeeded): a fork from {start!r} cannot carry its result; restart "
                f"from {name!r} or an earlier step",
            )
        carried[name] = stands[name]
    return Fork(origin, start, carried)


def start_fork(
    definition: Saga,
    saga_id: str,
    mode: str,
    value: Any,
    raw: bytes,
    digest: str,
    now: float,
    fork: Fork,
) -> tuple[SagaState, list[SagaEvent]]:
    """A fork and its first events: started (with what it carries), then the commands of the
    stage of ``fork.from_step``. :func:`~sagactor.sagas.machine.start` for a saga that begins
    part-way (kept apart: the machine is at its size limit)."""
    state, events = new_saga(
        definition,
        saga_id,
        mode,
        value,
        raw,
        digest,
        now,
        origin=fork.origin,
        from_step=fork.from_step,
        carried=fork.carried,
    )
    start_stage(state, definition.stage(fork.from_step), now, events)
    return state, events
