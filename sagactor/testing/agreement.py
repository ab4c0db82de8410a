"""Orchestration and choreography agree (guarantee 5), under simulation: one workload, one
seed, the same faults, once per mode; the final participant states must be the same.

The faults must be ones that decide the same whichever message meets them first
(:meth:`Faults.agreeing`): a fault that fires once hits whichever saga's command comes first,
and the two modes interleave differently, so it may hit different sagas, with neither mode
wrong. Crashes, power losses, restarts and message copies are in: they may change when things
happen, never what the participants end with. The workload's sagas must not compete for one
resource (in the shop, stock or a balance that runs out): then their order would decide
which fails, in either mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ..actors.participant import Participant
from ..sagas.definition import Saga
from .simulation import Faults, SimulationError, SimulationReport, Workload, simulate

__all__ = ["counted_effects", "simulate_both_modes"]

Projection = Callable[[dict[str, Any]], Any]


def counted_effects(states: dict[str, Any]) -> Any:
    """The default comparison: a state's ``applied`` and ``undone`` counts where it keeps them
    (the order of effects is the interleaving's, so it is left out), else the whole state."""
    projected: dict[str, Any] = {}
    for name, state in sorted(states.items()):
        if hasattr(state, "applied"):
            projected[name] = msgspec.to_builtins(
                {"applied": state.applied, "undone": getattr(state, "undone", {})}
            )
        else:
            projected[name] = msgspec.to_builtins(state)
    return projected


def simulate_both_modes(
    participants: Callable[[], Sequence[Participant[Any]]],
    sagas: Sequence[Saga],
    workload: Workload,
    *,
    seed: int,
    faults: Faults | None = None,
    project: Projection = counted_effects,
    check: Callable[[dict[str, Any]], list[str]] | None = None,
) -> tuple[SimulationReport, SimulationReport]:
    """:func:`simulate` in orchestration, then in step-list choreography, with the same seed
    and faults (:meth:`Faults.agreeing` by default); raises :class:`SimulationError` if either
    breaks an invariant or they end with different outcomes or projected states."""
    faults = Faults.agreeing() if faults is None else faults
    runs = [
        simulate(participants, sagas, workload, seed=seed, faults=faults, check=check, mode=mode)
        for mode in ("orchestration", "choreography")
    ]
    orchestrated, choreographed = runs
    problems = []
    if orchestrated.outcomes != choreographed.outcomes:
        problems.append(
            f"outcomes differ: orchestration {orchestrated.outcomes}, "
            f"choreography {choreographed.outcomes}"
        )
    left, right = project(orchestrated.states), project(choreographed.states)
    if left != right:
        problems.append(f"states differ: orchestration {left}, choreography {right}")
    if problems:
        raise SimulationError(seed, problems)
    return orchestrated, choreographed
