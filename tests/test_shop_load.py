"""1,000 concurrent shop sagas under seeded random failures: every one ends completed or
compensated, and the shop's books balance (stock and money conserved, each effect applied
at most once, completed orders hold their reservation, charge, shipment and notification,
compensated ones hold none of them)."""

from __future__ import annotations

import dataclasses
import random
import time

import msgspec

import sagactor as sa
from sagactor.examples.shop import Order, conservation_problems, make_shop, order_saga
from sagactor.messages import Handled, HandledOutcome, SagaStatus

SAGAS = 1_000
WAIT = 30.0
TIMEOUT = 1.0
SKUS = {"sku-1": 600, "sku-2": 520, "sku-3": 450}  # less than the orders want: some run out


def test_a_thousand_concurrent_sagas_with_random_failures_keep_the_books() -> None:
    rng = random.Random(20240601)
    customers = {f"c{i:02d}": rng.randrange(1_000, 7_000) for i in range(40)}
    orders = [
        Order(
            id=f"o{n}",
            customer=rng.choice(sorted(customers)),
            sku=rng.choice(sorted(SKUS)),
            qty=rng.randint(1, 3),
            amount=rng.randrange(10, 400),
            address="" if rng.random() < 0.03 else f"{n} Main St",  # a business failure
        )
        for n in range(SAGAS)
    ]
    # Generous compensation retries: a compensation here fails at random, but must not get
    # stuck (that is tested elsewhere): ten failures in a row at p=0.2 is a 1e-7 chance.
    # Reserving must start within TIMEOUT (schedule_timeout: the wait before the handler
    # starts): the delayed reservations below arrive after it.
    saga = dataclasses.replace(
        order_saga,
        name="order-load",
        steps=[
            dataclasses.replace(
                step,
                compensation_retry=sa.RetryPolicy(max_attempts=10, backoff=0.001),
                schedule_timeout=TIMEOUT if step.name == "reserve_inventory" else None,
            )
            for step in order_saga.steps
        ],
    )
    initial_money = sum(customers.values())

    with sa.Runtime.in_memory(participants=make_shop(dict(SKUS), dict(customers))) as rt:
        # technical errors that retry (charge_payment allows 3 attempts) or fail the step
        rt.inject("payment", "charge", sa.Fault("error", probability=0.25, seed=1))
        # business failures
        rt.inject("shipping", "create", sa.Fault("fail", probability=0.08, seed=3))
        # failing compensations (retried) and a slow participant
        rt.inject(
            "payment", "charge", sa.Fault("error", probability=0.2, seed=4), compensation=True
        )
        rt.inject(
            "inventory", "reserve", sa.Fault("error", probability=0.2, seed=5), compensation=True
        )
        rt.inject("notification", "send", sa.Fault("delay", probability=0.02, seconds=0.01, seed=6))
        # reservations that arrive after their step timed out: tombstones must refuse them
        late = sa.Fault("delay", probability=0.02, seconds=TIMEOUT + 0.5, seed=2)
        rt.inject("inventory", "reserve", late)

        began = time.monotonic()
        runs = rt.start_many(saga, orders)
        assert len({run.id for run in runs}) == SAGAS
        outcomes = [run.result(WAIT) for run in runs]
        time.sleep(max(0.0, began + TIMEOUT + 0.8 - time.monotonic()))  # let late ones land
        states = {name: rt.state(name) for name in rt.participants}
        history_of_one = rt.history(runs[0].id)
        assert all(fault.fired > 0 for _, fault in rt.faults)
        retried = {
            run.id
            for run, outcome in zip(runs, outcomes, strict=True)
            if outcome.ok
            and any(r.type == "StepRetrying" for r in rt.journal.read(f"saga/{run.id}"))
        }
        assert len(retried) >= 10  # technical errors that retried, then succeeded
        timed_out = {
            run.id
            for run in runs
            if any(r.type == "StepTimedOut" for r in rt.journal.read(f"saga/{run.id}"))
        }
        inbox = [
            msgspec.msgpack.decode(r.data, type=Handled)
            for r in rt.journal.read("participant/inventory")
            if r.type == "sagactor.Handled"
        ]
        tombstoned = {h.saga_id for h in inbox if h.outcome is HandledOutcome.TOMBSTONE}
        assert len(tombstoned) >= 5

    statuses = [o.status for o in outcomes]
    assert set(statuses) <= {SagaStatus.COMPLETED, SagaStatus.COMPENSATED}
    completed = [run.id for run, o in zip(runs, outcomes, strict=True) if o.ok]
    compensated = [run.id for run, o in zip(runs, outcomes, strict=True) if not o.ok]
    # the mix is real: plenty of both, and every kind of failure happened
    assert len(completed) >= SAGAS // 5
    assert len(compensated) >= SAGAS // 5
    reasons = " ".join(o.reason for o in outcomes)
    for symptom in ("in stock", "cannot pay", "injected failure", "injected error", "address"):
        assert symptom in reasons, symptom
    assert history_of_one[0].type == "SagaStarted"

    assert conservation_problems(states, dict(SKUS), initial_money) == []

    inventory, payment = states["inventory"], states["payment"]
    shipping, notification = states["shipping"], states["notification"]

    def keys(step: str, ids: list[str]) -> set[str]:
        return {f"{saga_id}/{step}" for saga_id in ids}

    # completed orders hold everything; compensated ones hold nothing
    assert set(inventory.reserved) == keys("reserve_inventory", completed)
    assert set(payment.charges) == keys("charge_payment", completed)
    assert set(shipping.shipments) == keys("create_shipment", completed)
    assert set(notification.sent) == keys("notify", completed)

    # per customer and per SKU, not only in total
    by_id = {run.id: order for run, order in zip(runs, orders, strict=True)}
    for customer, initial in customers.items():
        spent = sum(by_id[i].amount for i in completed if by_id[i].customer == customer)
        assert payment.balances.get(customer, initial) == initial - spent, customer
    for sku, initial in SKUS.items():
        sold = sum(by_id[i].qty for i in completed if by_id[i].sku == sku)
        assert inventory.stock[sku] == initial - sold, sku
        assert inventory.stock[sku] >= 0

    # each effect at most once, each undo only of something done
    for state in (inventory, payment, shipping):
        for key, count in state.applied.items():
            assert count == 1, key
            if key.endswith("/undo"):
                assert key.removesuffix("/undo") in state.applied
    # a timed-out reservation is compensated: refused by a tombstone if it came late, else
    # applied once and released once
    assert tombstoned <= timed_out <= set(compensated)
    assert not keys("reserve_inventory", sorted(tombstoned)) & set(inventory.applied)
    for key in keys("reserve_inventory", sorted(timed_out - tombstoned)):
        assert (inventory.applied[key], inventory.applied[f"{key}/undo"]) == (1, 1)
    undone = {k.removesuffix("/undo") for k in payment.applied if k.endswith("/undo")}
    assert undone <= keys("charge_payment", compensated)
    assert shipping.cancelled == sum(1 for k in shipping.applied if k.endswith("/undo"))
