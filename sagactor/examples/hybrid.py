"""The hybrid shop: choreography between bounded contexts, orchestration within (seed 003).

*Sales* orchestrates its own work, the saga ``sale``: place the order, take the payment, then,
as its pivot, hand the paid order to *fulfilment* by publishing ``OrderPaid`` and waiting for
fulfilment's terminal event (``sa.Child`` with a native choreography). *Fulfilment* is a
native choreography of its own contexts, which only know each other's events: the warehouse
picks the goods, dispatch delivers them, the notifier tells the customer. Dispatch, in turn,
orchestrates its delivery (book a courier, print a label) as the saga ``delivery``, run from
its reaction with ``ctx.run_saga``. So each context chooses its style, and the whole is still
one correlated history: ``history("<sale id>")`` shows every level nested.

A failure anywhere is undone where it happened, then reported upwards: a label that cannot be
printed cancels the courier (``delivery`` compensates), dispatch reports ``ShipmentFailed``,
the warehouse puts the goods back and ends fulfilment with ``FulfilmentFailed``, and the sale
refunds the payment and voids the order. ``Sale(address="")`` takes that road; ``qty`` above
the stock ends fulfilment at once.

Use it from the playground: ``sagactor play --module sagactor.examples.hybrid``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .. import (
    Child,
    ChildInput,
    Choreography,
    Participant,
    Saga,
    Step,
    StepContext,
    StepFailed,
    action,
    compensation,
    evolve,
    on,
)

__all__ = [
    "DELIVERY",
    "FULFILMENT",
    "SALE",
    "Billing",
    "Couriers",
    "CustomerNotified",
    "Dispatch",
    "Done",
    "FulfilmentFailed",
    "Ledger",
    "Notifier",
    "OrderPaid",
    "Parcel",
    "Picked",
    "Receipt",
    "Returned",
    "Sale",
    "Sales",
    "ShipmentFailed",
    "Shipped",
    "Taken",
    "Undone",
    "Warehouse",
    "defaults",
    "participants",
    "sagas",
]


class Sale(msgspec.Struct, frozen=True):
    id: str
    customer: str = "alice"
    sku: str = "sku-1"
    qty: int = 1
    amount: int = 100
    address: str = "1 Main St"


class Receipt(msgspec.Struct, frozen=True):
    payment_id: str
    amount: int


# -- the events between the contexts --------------------------------------------------------------


class OrderPaid(msgspec.Struct, frozen=True):
    sale: Sale
    payment_id: str


class Picked(msgspec.Struct, frozen=True):
    sale: Sale


class Shipped(msgspec.Struct, frozen=True):
    sale: Sale
    tracking: str


class ShipmentFailed(msgspec.Struct, frozen=True):
    sale: Sale
    reason: str


class CustomerNotified(msgspec.Struct, frozen=True):
    sale: Sale
    tracking: str


class FulfilmentFailed(msgspec.Struct, frozen=True):
    sale: Sale
    reason: str


class Parcel(msgspec.Struct, frozen=True):
    """What dispatch's ``delivery`` saga delivers."""

    sale: str
    address: str


DELIVERY = Saga(
    "delivery",
    [Step("courier", "couriers", "book"), Step("label", "couriers", "label")],
    input_type=Parcel,
)
"""Dispatch's delivery, orchestrated within its context (run from its reaction)."""


# -- the participants: each counts what it applied by key, so a test sees nothing applied twice --


class Ledger(msgspec.Struct):
    """A context's books: what stands, by key, and how often each key was applied."""

    standing: dict[str, int] = {}
    applied: dict[str, int] = {}
    stock: dict[str, int] = {}


class Done(msgspec.Struct, frozen=True):
    key: str
    amount: int = 0


class Undone(msgspec.Struct, frozen=True):
    key: str


class _Books(Participant[Ledger]):
    def initial_state(self) -> Ledger:
        return Ledger()

    @evolve
    def _done(self, state: Ledger, change: Done) -> None:
        state.standing[change.key] = change.amount
        state.applied[change.key] = state.applied.get(change.key, 0) + 1

    @evolve
    def _undone(self, state: Ledger, change: Undone) -> None:
        state.standing.pop(change.key, None)
        undo = f"{change.key}/undo"
        state.applied[undo] = state.applied.get(undo, 0) + 1


class Sales(_Books):
    name = "sales"

    @action("place")
    def place(self, ctx: StepContext, sale: Sale) -> str:
        ctx.record(Done(ctx.idempotency_key, sale.qty))
        return f"order-{sale.id}"

    @compensation("place")
    def void(self, ctx: StepContext, sale: Sale, done: str) -> None:
        ctx.record(Undone(ctx.idempotency_key))


class Billing(_Books):
    name = "billing"

    @action("charge")
    def charge(self, ctx: StepContext, sale: Sale) -> Receipt:
        if sale.amount <= 0:
            raise StepFailed("nothing to charge")
        ctx.record(Done(ctx.idempotency_key, sale.amount))
        return Receipt(f"pay-{ctx.idempotency_key}", sale.amount)

    @compensation("charge")
    def refund(self, ctx: StepContext, sale: Sale, done: Receipt) -> None:
        ctx.record(Undone(ctx.idempotency_key))


class Couriers(_Books):
    """Dispatch's own services, orchestrated by the ``delivery`` saga."""

    name = "couriers"

    @action("book")
    def book(self, ctx: StepContext, parcel: Parcel) -> str:
        ctx.record(Done(ctx.idempotency_key))
        return f"courier-{parcel.sale}"

    @compensation("book")
    def cancel(self, ctx: StepContext, parcel: Parcel, done: str) -> None:
        ctx.record(Undone(ctx.idempotency_key))

    @action("label")
    def label(self, ctx: StepContext, parcel: Parcel) -> str:
        if not parcel.address.strip():
            raise StepFailed("no address to print")
        ctx.record(Done(ctx.idempotency_key))
        return f"trk-{parcel.sale}"

    @compensation("label")
    def void_label(self, ctx: StepContext, parcel: Parcel, done: str) -> None:
        ctx.record(Undone(ctx.idempotency_key))


class Taken(msgspec.Struct, frozen=True):
    key: str
    sku: str
    qty: int


class Returned(msgspec.Struct, frozen=True):
    key: str
    sku: str
    qty: int


class Warehouse(_Books):
    name = "warehouse"

    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.initial = dict(stock if stock is not None else {"sku-1": 10})

    def initial_state(self) -> Ledger:
        return Ledger(stock=dict(self.initial))

    @on(OrderPaid, emits=(Picked, FulfilmentFailed))
    def pick(self, ctx: StepContext, event: OrderPaid) -> None:
        sale = event.sale
        if self.state.stock.get(sale.sku, 0) < sale.qty:
            ctx.publish(FulfilmentFailed(sale, f"out of stock: {sale.sku}"))
            return
        ctx.record(Taken(ctx.saga_id, sale.sku, sale.qty))
        ctx.publish(Picked(sale))

    @on(ShipmentFailed, emits=(FulfilmentFailed,))
    def put_back(self, ctx: StepContext, event: ShipmentFailed) -> None:
        sale = event.sale
        ctx.record(Returned(ctx.saga_id, sale.sku, sale.qty))
        ctx.publish(FulfilmentFailed(sale, event.reason))

    @evolve
    def _taken(self, state: Ledger, change: Taken) -> None:
        state.stock[change.sku] -= change.qty
        state.applied[change.key] = state.applied.get(change.key, 0) + 1

    @evolve
    def _returned(self, state: Ledger, change: Returned) -> None:
        state.stock[change.sku] += change.qty
        undo = f"{change.key}/undo"
        state.applied[undo] = state.applied.get(undo, 0) + 1


class Dispatch(_Books):
    """Reacts to ``Picked`` by running the orchestrated ``delivery`` saga (a hybrid flow)."""

    name = "dispatch"

    @on(Picked, emits=(Shipped, ShipmentFailed), runs=(DELIVERY,))
    def deliver(self, ctx: StepContext, event: Picked) -> None:
        parcel = Parcel(event.sale.id, event.sale.address)
        outcome = ctx.run_saga(DELIVERY, parcel)
        if outcome.status == "completed":
            ctx.publish(Shipped(event.sale, str(outcome.results["label"])))
        else:
            ctx.publish(ShipmentFailed(event.sale, outcome.reason))


class Notifier(_Books):
    name = "notifier"

    @on(Shipped, emits=(CustomerNotified,))
    def notify(self, ctx: StepContext, event: Shipped) -> None:
        ctx.record(Done(ctx.saga_id))
        ctx.publish(CustomerNotified(event.sale, event.tracking))


# -- the definitions ------------------------------------------------------------------------------

FULFILMENT = Choreography(
    "fulfilment", start=OrderPaid, completed=(CustomerNotified,), failed=(FulfilmentFailed,)
)
"""Between the contexts: the warehouse, dispatch and the notifier react to each other."""


def _paid(given: ChildInput) -> OrderPaid:
    return OrderPaid(given.input, given.results["payment"].payment_id)


SALE = Saga(
    "sale",
    [
        Step("order", "sales", "place"),
        Step("payment", "billing", "charge"),
        Child("fulfilment", FULFILMENT, input=_paid, pivot=True),
    ],
    input_type=Sale,
)
"""Sales' own work, orchestrated; fulfilment's outcome is its pivot's."""


def participants() -> list[Participant[Any]]:
    """Fresh participants of every context (for a runtime, or the playground)."""
    return [Sales(), Billing(), Warehouse(), Dispatch(), Couriers(), Notifier()]


sagas: list[Saga | Choreography] = [DELIVERY, FULFILMENT, SALE]
defaults: dict[str, dict[str, Any]] = {"sale": {"customer": "alice", "qty": 1, "amount": 100}}
