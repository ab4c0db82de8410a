"""Hypothesis drives the shop through starts, faults, crashes, I/O errors and recoveries.

Its orders run as ``order_saga`` (four steps in a row), or in a shape drawn per start: any
run of neighbouring steps as one parallel group (``parallel_order_saga`` is one of them), or
the charge and the shipment as a child saga of their own.

The model is small: which sagas were acknowledged (their ``start`` returned), and the initial
stock and money. After every step the books must balance and no effect may be applied twice;
at the end every fault is healed, the runtime runs to quiescence, and every acknowledged saga
must have ended, its compensations in reverse order of its completed steps.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import sagactor as sa
from sagactor.examples.shop import (
    Order,
    conservation_problems,
    make_shop,
    order_saga,
    parallel_order_saga,
)
from sagactor.messages import StepCompensated, StepSucceeded

STOCK = {"sku-1": 40, "sku-2": 40}
BALANCES = {"alice": 300, "bob": 3_000}
MONEY = sum(BALANCES.values())
PARTICIPANTS = ("inventory", "payment", "shipping", "notification")


def _grouped(first: int, last: int) -> sa.Saga:
    """``order_saga`` with its steps ``first`` .. ``last`` as one parallel group."""
    steps = list(order_saga.steps)
    group = sa.Parallel(steps[first : last + 1])
    return sa.Saga(f"order-g{first}{last}", [*steps[:first], group, *steps[last + 1 :]])


_pay_and_ship = sa.Saga("pay-and-ship", list(order_saga.steps[1:3]))
nested_order_saga = sa.Saga(
    "order-nested",
    [
        order_saga.steps[0],
        sa.Child("pay_and_ship", _pay_and_ship),
        order_saga.steps[3],
    ],
)
"""The charge and the shipment as a child saga: undone by its own compensations."""

SHAPES = [
    order_saga,
    parallel_order_saga,
    *(_grouped(a, b) for a, b in ((0, 2), (1, 2), (2, 3), (0, 3))),
    nested_order_saga,
]
SAGAS = [*SHAPES, _pay_and_ship]
BY_NAME = {saga.name: saga for saga in SAGAS}
ACTIONS = {
    "inventory": "reserve",
    "payment": "charge",
    "shipping": "create",
    "notification": "send",
}


class IOFault:
    """A journal fault hook that fails the next ``count`` writes with an I/O error."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self, records: Any) -> None:
        if self.count > 0:
            self.count -= 1
            raise OSError("injected I/O error")


class ShopUnderCrashes(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sagactor-stateful-"))
        self.path = self.dir / "shop.db"
        self.acknowledged: list[str] = []
        self.counter = 0
        self.rt = self._open()

    def _open(self) -> sa.Runtime:
        return sa.Runtime.open(
            self.path,
            synchronous="normal",
            participants=make_shop(STOCK, BALANCES),
            sagas=SAGAS,
            snapshot_every=7,
        )

    @property
    def alive(self) -> bool:
        return not self.rt.crashed

    # -- rules ---------------------------------------------------------------------------------

    @rule(
        count=st.integers(1, 4),
        mode=st.sampled_from(["orchestration", "choreography"]),
        customer=st.sampled_from(sorted(BALANCES)),
        sku=st.sampled_from(sorted(STOCK)),
        qty=st.integers(1, 6),
        amount=st.integers(1, 120),
        saga=st.sampled_from(SHAPES),
    )
    def start(
        self,
        count: int,
        mode: sa.Mode,
        customer: str,
        sku: str,
        qty: int,
        amount: int,
        saga: sa.Saga,
    ) -> None:
        orders = []
        for _ in range(count):
            self.counter += 1
            orders.append(Order(f"o{self.counter}", customer, sku, qty, amount))
        for order in orders:
            try:
                run = self.rt.start(saga, order, saga_id=order.id, mode=mode)
            except (sa.RuntimeCrashed, sa.JournalWriteError):
                continue  # not acknowledged: the model owes it nothing
            self.acknowledged.append(run.id)

    @rule(
        participant=st.sampled_from(PARTICIPANTS),
        kind=st.sampled_from(["fail", "error", "delay"]),
        times=st.integers(1, 4),
        on_compensation=st.booleans(),
    )
    def inject_fault(self, participant: str, kind: str, times: int, on_compensation: bool) -> None:
        if not self.alive or (on_compensation and participant == "notification"):
            return  # notify is not compensable
        fault = sa.Fault(kind, times=times, seconds=0.02)  # type: ignore[arg-type]
        self.rt.inject(participant, ACTIONS[participant], fault, compensation=on_compensation)

    @rule(point=st.sampled_from(list(sa.CrashPoint)), hit=st.integers(1, 12))
    def arm_crash(self, point: sa.CrashPoint, hit: int) -> None:
        if self.alive:
            self.rt.arm(point, hit)

    @rule()
    def crash_now(self) -> None:
        self.rt.crash()  # a no-op on a runtime that is already dead

    @rule(count=st.integers(1, 3))
    def io_fault(self, count: int) -> None:
        if self.alive:
            self.rt.journal.fault = IOFault(count)  # type: ignore[attr-defined]

    @rule()
    def recover(self) -> None:
        self.rt.close()
        self.rt = self._open()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        if not self.alive:
            return
        try:
            states = {name: self.rt.state(name) for name in PARTICIPANTS}
        except sa.SagactorError:
            return  # it died between the check and the look
        assert conservation_problems(states, STOCK, MONEY) == []

    # -- the end -------------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.alive:
                self.recover()
            self.rt.clear_faults()
            self.rt.crash_plan.disarm()
            self.rt.journal.fault = None  # type: ignore[attr-defined]
            for saga_id in self.acknowledged:
                outcome = self.rt.run(saga_id).result(timeout=20)
                for _ in range(3):
                    if outcome.status is not sa.SagaStatus.STUCK:
                        break
                    self._resume_child(saga_id)  # a stuck child keeps its parent stuck
                    self.rt.resume(saga_id)
                    outcome = self.rt.run(saga_id).result(timeout=20)
                assert outcome.status in (sa.SagaStatus.COMPLETED, sa.SagaStatus.COMPENSATED), (
                    f"{saga_id}: {outcome.status} {outcome.reason}"
                )
                self._check_order(saga_id)
            states = {name: self.rt.state(name) for name in PARTICIPANTS}
            assert conservation_problems(states, STOCK, MONEY) == []
            inventory = states["inventory"]
            for saga_id in self.acknowledged:
                outcome = self.rt.status(saga_id)
                held = f"{saga_id}/reserve_inventory" in inventory.reserved
                assert held == (outcome.status is sa.SagaStatus.COMPLETED), saga_id
        finally:
            self.rt.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _resume_child(self, saga_id: str) -> None:
        child = f"{saga_id}/pay_and_ship"
        if child in self.rt.saga_ids() and self.rt.status(child).status is sa.SagaStatus.STUCK:
            self.rt.resume(child)
            self.rt.run(child).result(timeout=20)

    def _check_order(self, saga_id: str) -> None:
        history = [e for e in self.rt.history(saga_id) if e.saga_id == saga_id]  # not a child's
        done = [e.event.step for e in history if isinstance(e.event, StepSucceeded)]
        undone = [e.event.step for e in history if isinstance(e.event, StepCompensated)]
        status = self.rt.status(saga_id)
        saga = BY_NAME[status.saga]
        compensable = [s for s in done if saga.step(s).compensable]
        if status.status is sa.SagaStatus.COMPLETED:
            assert undone == [], f"{saga_id} completed but compensated {undone}"
            return
        # Reverse order of completion; the steps in doubt (never known done; one, or a
        # group's members) come first.
        assert [s for s in undone if s in done] == list(reversed(compensable)), (
            f"{saga_id}: done {done}, compensated {undone}"
        )
        doubt = [s for s in undone if s not in done]
        assert undone[: len(doubt)] == doubt, f"{saga_id}: compensated {undone}"


ShopUnderCrashes.TestCase.settings = settings(
    settings(),
    stateful_step_count=12,
    max_examples=200 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 30,
)
TestShopUnderCrashes = ShopUnderCrashes.TestCase
