"""A small domain of the PostgreSQL tests' own: a warehouse, a till and a courier.

A shipment takes stock (reserve), money (charge) and a courier (book); a booking for a
destination the courier does not serve fails, so that saga compensates. Every change is
counted per idempotency key, so a test sees an effect applied twice. Run as a module, it is
the child of the kill test: it opens the journal at the URL it is given, starts sagas, and
prints each id once ``start`` returned.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

import sagactor as sa

ITEMS = 1_000_000
MONEY = 1_000_000
NOWHERE = "atlantis"  # the courier does not go there
MODES: tuple[sa.Mode, ...] = ("orchestration", "choreography")


class Shipment(msgspec.Struct, frozen=True):
    id: str
    items: int
    price: int
    to: str = "lyon"


class Moved(msgspec.Struct, frozen=True):
    key: str
    amount: int  # negative: taken; positive: given back


class Ledger(msgspec.Struct):
    level: int
    held: dict[str, int] = {}  # key -> amount taken and not given back
    applied: dict[str, int] = {}  # key -> times a change was applied


class Store(sa.Participant[Ledger]):
    """Takes an amount of something (items, money) for a step, gives it back on compensation."""

    def __init__(self, name: str, level: int, field: str) -> None:
        self.name = name
        self.level = level
        self.field = field

    def initial_state(self) -> Ledger:
        return Ledger(self.level)

    @sa.action("take")
    def take(self, ctx: sa.StepContext, shipment: Shipment) -> int:
        amount: int = getattr(shipment, self.field)
        if self.state.level < amount:
            raise sa.StepFailed(f"{self.name} has {self.state.level}, {amount} wanted")
        ctx.record(Moved(ctx.idempotency_key, -amount))
        return amount

    @sa.compensation("take")
    def give_back(self, ctx: sa.StepContext, shipment: Shipment, taken: int) -> None:
        ctx.record(Moved(ctx.idempotency_key, taken))

    @sa.evolve
    def _moved(self, state: Ledger, change: Moved) -> None:
        state.level += change.amount
        if change.amount < 0:
            state.held[change.key] = -change.amount
        else:
            state.held.pop(change.key, None)
        tag = change.key + ("/undo" if change.amount > 0 else "")
        state.applied[tag] = state.applied.get(tag, 0) + 1


class Booked(msgspec.Struct, frozen=True):
    key: str


class Rounds(msgspec.Struct):
    booked: dict[str, int] = {}


class Courier(sa.Participant[Rounds]):
    name = "courier"

    def initial_state(self) -> Rounds:
        return Rounds()

    @sa.action("book")
    def book(self, ctx: sa.StepContext, shipment: Shipment) -> None:
        if shipment.to == NOWHERE:
            raise sa.StepFailed(f"no rounds to {NOWHERE}")
        ctx.record(Booked(ctx.idempotency_key))

    @sa.evolve
    def _booked(self, state: Rounds, change: Booked) -> None:
        state.booked[change.key] = state.booked.get(change.key, 0) + 1


shipping = sa.Saga(
    "shipping",
    [
        sa.Step("reserve", participant="warehouse", action="take"),
        sa.Step("charge", participant="till", action="take"),
        sa.Step("book", participant="courier", action="book", compensable=False),
    ],
    input_type=Shipment,
)


def participants() -> list[sa.Participant[Any]]:
    return [Store("warehouse", ITEMS, "items"), Store("till", MONEY, "price"), Courier()]


def open_runtime(url: str, **options: Any) -> sa.Runtime:
    return sa.Runtime.open(url, participants=participants(), sagas=[shipping], **options)


def shipment(number: int, prefix: str = "") -> Shipment:
    to = NOWHERE if number % 4 == 3 else "lyon"
    return Shipment(f"{prefix}ship-{number}", items=1 + number % 3, price=10 + number % 7, to=to)


def problems(rt: sa.Runtime, acknowledged: list[str], *, timeout: float = 30.0) -> list[str]:
    """Every broken guarantee once the ``acknowledged`` sagas have ended (empty if none)."""
    found: list[str] = []
    outcomes = {saga_id: rt.run(saga_id).result(timeout) for saga_id in acknowledged}
    stores: dict[str, Ledger] = {name: rt.state(name) for name in ("warehouse", "till")}
    courier: Rounds = rt.state("courier")
    for name, ledger in stores.items():
        if ledger.level + sum(ledger.held.values()) != (ITEMS if name == "warehouse" else MONEY):
            found.append(f"{name} does not balance: {ledger.level} + held {ledger.held}")
        found += [f"{name}: {key} applied {n} times" for key, n in ledger.applied.items() if n > 1]
    found += [f"courier: {key} booked {n} times" for key, n in courier.booked.items() if n > 1]
    for saga_id, outcome in outcomes.items():
        failing = int(saga_id.rsplit("-", 1)[1]) % 4 == 3  # see shipment()
        expected = sa.SagaStatus.COMPENSATED if failing else sa.SagaStatus.COMPLETED
        if outcome.status is not expected:
            found.append(f"{saga_id} ended {outcome.status} ({outcome.reason}), not {expected}")
        held = [f"{saga_id}/{step}" in stores[name].held for step, name in _TAKERS]
        if held != [outcome.status is sa.SagaStatus.COMPLETED] * 2:
            found.append(f"{saga_id} ended {outcome.status} holding {held}")
    return found


_TAKERS = (("reserve", "warehouse"), ("charge", "till"))


def child(url: str, prefix: str) -> None:
    """Start sagas until killed, printing each id once its start returned."""
    rt = open_runtime(url)
    print("ready", flush=True)
    number = 0
    while True:
        for mode in MODES:
            number += 1
            order = shipment(number, prefix)
            print(rt.start(shipping, order, saga_id=order.id, mode=mode).id, flush=True)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2])
