"""A chain of identical ledger participants for crash tests: every effect is counted.

Step ``s<i>`` runs on participant ``p<i>``. A job may name the step that fails (a business
failure, the same on every delivery), so a saga completes or compensates deterministically.
"""

from __future__ import annotations

import msgspec

import sagactor as sa
from sagactor.messages import StepCompensated
from sagactor.testing import CountingLedger, LedgerState

MODES: tuple[sa.Mode, ...] = ("orchestration", "choreography")


class Job(msgspec.Struct, frozen=True):
    id: str
    fail_at: str = ""


class Ledger(CountingLedger):
    """The chain's participant: the shipped counting ledger (its actions take a :class:`Job`)."""

    @sa.action("do")
    def do(self, ctx: sa.StepContext, value: Job) -> str:
        return super().do(ctx, value)


def chain_saga(steps: int, *, timeout: float | None = None, retries: int = 1) -> sa.Saga:
    return sa.Saga(
        f"chain{steps}",
        [
            sa.Step(
                f"s{i}",
                participant=f"p{i}",
                action="do",
                timeout=timeout,
                retry=sa.RetryPolicy(max_attempts=retries, backoff=0.001),
            )
            for i in range(steps)
        ],
        input_type=Job,
    )


def ledgers(steps: int) -> list[sa.Participant[LedgerState]]:
    return [Ledger(f"p{i}") for i in range(steps)]


def violations(
    rt: sa.Runtime, saga_ids: list[str], steps: int, *, timeout: float = 10.0
) -> list[str]:
    """Every broken guarantee, after waiting for ``saga_ids`` to end (empty when all hold)."""
    problems: list[str] = []
    states = {f"p{i}": rt.state(f"p{i}") for i in range(steps)}
    outcomes = {}
    for saga_id in saga_ids:
        outcome = rt.run(saga_id).result(timeout)
        outcomes[saga_id] = outcome
        if outcome.status not in (sa.SagaStatus.COMPLETED, sa.SagaStatus.COMPENSATED):
            problems.append(f"{saga_id} ended {outcome.status}: {outcome.reason}")
    states = {f"p{i}": rt.state(f"p{i}") for i in range(steps)}
    for saga_id, outcome in outcomes.items():
        undo_order = []
        for i in range(steps):
            key = f"{saga_id}/s{i}"
            state: LedgerState = states[f"p{i}"]
            applied, undone = state.applied.get(key, 0), state.undone.get(key, 0)
            if key in state.repeated():
                problems.append(f"{key} applied {applied}x, undone {undone}x")
            if outcome.status is sa.SagaStatus.COMPLETED and (applied, undone) != (1, 0):
                problems.append(f"{key} of a completed saga: applied {applied}, undone {undone}")
            if outcome.status is sa.SagaStatus.COMPENSATED and undone != applied:
                problems.append(f"{key} of a compensated saga: applied {applied}, undone {undone}")
            if undone:
                undo_order.append(i)
        history = [
            int(e.event.step[1:])
            for e in rt.history(saga_id)
            if isinstance(e.event, StepCompensated)
        ]
        if history != sorted(history, reverse=True):
            problems.append(f"{saga_id} compensated out of order: {history}")
        if set(undo_order) - set(history):
            problems.append(f"{saga_id} undone {undo_order} but history says {history}")
    return problems
