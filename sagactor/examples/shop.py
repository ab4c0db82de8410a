"""Order fulfilment: the example domain of the docs, the playground, the tests and the bench.

Four services with real private state: inventory (stock per SKU, reservations), payment
(balances, charges), shipping (shipments) and notification (messages sent). Each state also
counts the changes applied per idempotency key, so a test can see an effect applied twice.

Faults are injected through the runtime (``rt.inject("payment", "charge", Fault("fail"))``),
so every participant and action has the same knob.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..actors.participant import Participant, StepContext, action, compensation, evolve, on
from ..errors import StepFailed
from ..sagas.definition import Choreography, Parallel, RetryPolicy, Saga, Step
from .shop_events import (
    CustomerNotified,
    InventoryFailed,
    InventoryReleased,
    InventoryReserved,
    Order,
    OrderCancelled,
    OrderCreated,
    OrderShipped,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
)

__all__ = [
    "Charge",
    "Charged",
    "Inventory",
    "InventoryState",
    "JoinClosed",
    "JoinNoted",
    "Notification",
    "NotificationSent",
    "NotificationState",
    "Order",
    "Payment",
    "PaymentState",
    "Refunded",
    "Reservation",
    "Shipment",
    "ShipmentCancelled",
    "ShipmentCreated",
    "Shipping",
    "ShippingState",
    "StockReleased",
    "StockReserved",
    "conservation_problems",
    "make_shop",
    "order_choreography",
    "order_saga",
    "parallel_order_saga",
]


# -- inventory ---------------------------------------------------------------------------------


class Reservation(msgspec.Struct, frozen=True):
    key: str
    sku: str
    qty: int


class StockReserved(msgspec.Struct, frozen=True):
    key: str
    sku: str
    qty: int


class StockReleased(msgspec.Struct, frozen=True):
    key: str
    sku: str
    qty: int


class InventoryState(msgspec.Struct):
    stock: dict[str, int]
    reserved: dict[str, Reservation] = {}
    applied: dict[str, int] = {}


def _count(applied: dict[str, int], key: str) -> None:
    applied[key] = applied.get(key, 0) + 1


class Inventory(Participant[InventoryState]):
    name = "inventory"

    def __init__(self, stock: dict[str, int] | None = None) -> None:
        self.initial_stock = dict(stock if stock is not None else {"sku-1": 1_000_000})

    def initial_state(self) -> InventoryState:
        return InventoryState(stock=dict(self.initial_stock))

    @action("reserve")
    def reserve(self, ctx: StepContext, order: Order) -> Reservation:
        available = self.state.stock.get(order.sku, 0)
        if available < order.qty:
            raise StepFailed(f"only {available} of {order.sku} in stock, {order.qty} wanted")
        ctx.record(StockReserved(ctx.idempotency_key, order.sku, order.qty))
        return Reservation(ctx.idempotency_key, order.sku, order.qty)

    @compensation("reserve")
    def release(self, ctx: StepContext, order: Order, done: Reservation) -> None:
        ctx.record(StockReleased(done.key, done.sku, done.qty))

    # Native choreography: the same service, reacting to events instead of commands. Keys
    # match the orchestrated ones, so both styles leave the same books.

    @on(OrderCreated, emits=(InventoryReserved, InventoryFailed))
    def on_order(self, ctx: StepContext, event: OrderCreated) -> None:
        order = event.order
        available = self.state.stock.get(order.sku, 0)
        if available < order.qty:
            ctx.publish(InventoryFailed(order, f"only {available} of {order.sku} in stock"))
            return
        ctx.record(StockReserved(f"{ctx.saga_id}/reserve_inventory", order.sku, order.qty))
        ctx.publish(InventoryReserved(order))

    @on(OrderCancelled, emits=(InventoryReleased,))
    def on_cancel(self, ctx: StepContext, event: OrderCancelled) -> None:
        held = self.state.reserved.get(f"{ctx.saga_id}/reserve_inventory")
        if held is not None:
            ctx.record(StockReleased(held.key, held.sku, held.qty))
        ctx.publish(InventoryReleased(event.order))

    @evolve
    def _reserved(self, state: InventoryState, change: StockReserved) -> None:
        state.stock[change.sku] -= change.qty
        state.reserved[change.key] = Reservation(change.key, change.sku, change.qty)
        _count(state.applied, change.key)

    @evolve
    def _released(self, state: InventoryState, change: StockReleased) -> None:
        state.stock[change.sku] += change.qty
        del state.reserved[change.key]
        _count(state.applied, change.key + "/undo")


# -- payment -----------------------------------------------------------------------------------


class Charge(msgspec.Struct, frozen=True):
    key: str
    customer: str
    amount: int


class Charged(msgspec.Struct, frozen=True):
    key: str
    customer: str
    amount: int


class Refunded(msgspec.Struct, frozen=True):
    key: str
    customer: str
    amount: int


class PaymentState(msgspec.Struct):
    balances: dict[str, int]
    charges: dict[str, Charge] = {}
    applied: dict[str, int] = {}


class Payment(Participant[PaymentState]):
    name = "payment"

    def __init__(self, balances: dict[str, int] | None = None) -> None:
        self.initial_balances = dict(balances if balances is not None else {})
        self.default_balance = 10**12 if balances is None else 0

    def initial_state(self) -> PaymentState:
        return PaymentState(balances=dict(self.initial_balances))

    def _balance(self, customer: str) -> int:
        return self.state.balances.get(customer, self.default_balance)

    @action("charge")
    def charge(self, ctx: StepContext, order: Order) -> Charge:
        if self._balance(order.customer) < order.amount:
            raise StepFailed(f"{order.customer} cannot pay {order.amount}")
        ctx.record(Charged(ctx.idempotency_key, order.customer, order.amount))
        return Charge(ctx.idempotency_key, order.customer, order.amount)

    @compensation("charge")
    def refund(self, ctx: StepContext, order: Order, done: Charge) -> None:
        ctx.record(Refunded(done.key, done.customer, done.amount))

    @on(OrderCreated, emits=(PaymentProcessed, PaymentFailed))
    def on_order(self, ctx: StepContext, event: OrderCreated) -> None:
        order = event.order
        if self._balance(order.customer) < order.amount:
            ctx.publish(PaymentFailed(order, f"{order.customer} cannot pay {order.amount}"))
            return
        ctx.record(Charged(f"{ctx.saga_id}/charge_payment", order.customer, order.amount))
        ctx.publish(PaymentProcessed(order))

    @on(InventoryReleased, emits=(PaymentRefunded,))
    def on_released(self, ctx: StepContext, event: InventoryReleased) -> None:
        charge = self.state.charges.get(f"{ctx.saga_id}/charge_payment")
        if charge is not None:
            ctx.record(Refunded(charge.key, charge.customer, charge.amount))
        ctx.publish(PaymentRefunded(event.order))

    @evolve
    def _charged(self, state: PaymentState, change: Charged) -> None:
        state.balances[change.customer] = self._balance(change.customer) - change.amount
        state.charges[change.key] = Charge(change.key, change.customer, change.amount)
        _count(state.applied, change.key)

    @evolve
    def _refunded(self, state: PaymentState, change: Refunded) -> None:
        state.balances[change.customer] += change.amount
        del state.charges[change.key]
        _count(state.applied, change.key + "/undo")


# -- shipping ----------------------------------------------------------------------------------


class Shipment(msgspec.Struct, frozen=True):
    key: str
    order_id: str
    address: str


class ShipmentCreated(msgspec.Struct, frozen=True):
    key: str
    order_id: str
    address: str


class ShipmentCancelled(msgspec.Struct, frozen=True):
    key: str


class JoinNoted(msgspec.Struct, frozen=True):
    """Native choreography: one side (inventory or payment) of an order answered."""

    saga_id: str
    side: str
    failure: str


class JoinClosed(msgspec.Struct, frozen=True):
    saga_id: str


class ShippingState(msgspec.Struct):
    shipments: dict[str, Shipment] = {}
    cancelled: int = 0
    applied: dict[str, int] = {}
    joins: dict[str, dict[str, str]] = {}


class Shipping(Participant[ShippingState]):
    name = "shipping"

    def initial_state(self) -> ShippingState:
        return ShippingState()

    @action("create")
    def create(self, ctx: StepContext, order: Order) -> Shipment:
        if not order.address.strip():
            raise StepFailed("no shipping address")
        ctx.record(ShipmentCreated(ctx.idempotency_key, order.id, order.address))
        return Shipment(ctx.idempotency_key, order.id, order.address)

    @compensation("create")
    def cancel(self, ctx: StepContext, order: Order, done: Shipment) -> None:
        ctx.record(ShipmentCancelled(done.key))

    # Native choreography: ship once both inventory and payment answered (a join).

    @on(InventoryReserved, emits=(OrderShipped, OrderCancelled))
    def on_reserved(self, ctx: StepContext, event: InventoryReserved) -> None:
        self._join(ctx, event.order, "inventory", "")

    @on(InventoryFailed, emits=(OrderCancelled,))
    def on_no_stock(self, ctx: StepContext, event: InventoryFailed) -> None:
        self._join(ctx, event.order, "inventory", event.reason)

    @on(PaymentProcessed, emits=(OrderShipped, OrderCancelled))
    def on_paid(self, ctx: StepContext, event: PaymentProcessed) -> None:
        self._join(ctx, event.order, "payment", "")

    @on(PaymentFailed, emits=(OrderCancelled,))
    def on_not_paid(self, ctx: StepContext, event: PaymentFailed) -> None:
        self._join(ctx, event.order, "payment", event.reason)

    def _join(self, ctx: StepContext, order: Order, side: str, failure: str) -> None:
        ctx.record(JoinNoted(ctx.saga_id, side, failure))
        sides = self.state.joins[ctx.saga_id]
        if len(sides) < 2:
            return
        ctx.record(JoinClosed(ctx.saga_id))
        failures = [reason for reason in sides.values() if reason]
        if failures:
            ctx.publish(OrderCancelled(order, "; ".join(sorted(failures))))
        elif not order.address.strip():
            ctx.publish(OrderCancelled(order, "no shipping address"))
        else:
            key = f"{ctx.saga_id}/create_shipment"
            ctx.record(ShipmentCreated(key, order.id, order.address))
            ctx.publish(OrderShipped(order))

    @evolve
    def _noted(self, state: ShippingState, change: JoinNoted) -> None:
        state.joins.setdefault(change.saga_id, {})[change.side] = change.failure

    @evolve
    def _closed(self, state: ShippingState, change: JoinClosed) -> None:
        del state.joins[change.saga_id]

    @evolve
    def _created(self, state: ShippingState, change: ShipmentCreated) -> None:
        state.shipments[change.key] = Shipment(change.key, change.order_id, change.address)
        _count(state.applied, change.key)

    @evolve
    def _cancelled(self, state: ShippingState, change: ShipmentCancelled) -> None:
        del state.shipments[change.key]
        state.cancelled += 1
        _count(state.applied, change.key + "/undo")


# -- notification ------------------------------------------------------------------------------


class NotificationSent(msgspec.Struct, frozen=True):
    key: str
    customer: str
    text: str


class NotificationState(msgspec.Struct):
    sent: dict[str, str] = {}
    applied: dict[str, int] = {}


class Notification(Participant[NotificationState]):
    name = "notification"

    def initial_state(self) -> NotificationState:
        return NotificationState()

    @action("send")
    def send(self, ctx: StepContext, order: Order) -> str:
        text = f"order {order.id} is on its way"
        ctx.record(NotificationSent(ctx.idempotency_key, order.customer, text))
        return text

    @on(OrderShipped, emits=(CustomerNotified,))
    def on_shipped(self, ctx: StepContext, event: OrderShipped) -> None:
        text = f"order {event.order.id} is on its way"
        ctx.record(NotificationSent(f"{ctx.saga_id}/notify", event.order.customer, text))
        ctx.publish(CustomerNotified(event.order))

    @evolve
    def _sent(self, state: NotificationState, change: NotificationSent) -> None:
        state.sent[change.key] = change.text
        _count(state.applied, change.key)


# -- the saga ----------------------------------------------------------------------------------

order_saga = Saga(
    "order",
    steps=[
        Step("reserve_inventory", participant="inventory", action="reserve"),
        Step(
            "charge_payment",
            participant="payment",
            action="charge",
            retry=RetryPolicy(max_attempts=3, backoff=0.01),
        ),
        Step("create_shipment", participant="shipping", action="create"),
        Step("notify", participant="notification", action="send", compensable=False),
    ],
    input_type=Order,
)

parallel_order_saga = Saga(
    "order-parallel",
    steps=[
        Parallel(
            [
                Step("reserve_inventory", participant="inventory", action="reserve"),
                Step(
                    "charge_payment",
                    participant="payment",
                    action="charge",
                    retry=RetryPolicy(max_attempts=3, backoff=0.01),
                ),
            ]
        ),
        Step("create_shipment", participant="shipping", action="create"),
        Step("notify", participant="notification", action="send", compensable=False),
    ],
    input_type=Order,
)
"""``order_saga`` with the reservation and the charge at once (a parallel group): if either
fails, the other is undone once it has answered."""

order_choreography = Choreography(
    "order-native",
    start=OrderCreated,
    completed=(CustomerNotified,),
    failed=(PaymentRefunded,),
    cancel=OrderCancelled,
)
"""The same business as ``order_saga``, emerging from the participants' ``@on`` handlers."""


def make_shop(
    stock: dict[str, int] | None = None, balances: dict[str, int] | None = None
) -> list[Participant[Any]]:
    """Fresh participants (their state comes from the journal when the runtime registers them)."""
    return [Inventory(stock), Payment(balances), Shipping(), Notification()]


def conservation_problems(
    participants: dict[str, Any], initial_stock: dict[str, int], initial_money: int | None = None
) -> list[str]:
    """What is wrong with the shop's books: stock or money not conserved, an effect applied twice.

    ``participants`` maps names to states (``rt.state(name)``).
    """
    problems: list[str] = []
    inventory: InventoryState = participants["inventory"]
    payment: PaymentState = participants["payment"]
    for sku, initial in initial_stock.items():
        held = sum(r.qty for r in inventory.reserved.values() if r.sku == sku)
        if inventory.stock.get(sku, 0) + held != initial:
            problems.append(
                f"stock of {sku}: {inventory.stock.get(sku, 0)} + {held} reserved != {initial}"
            )
        if inventory.stock.get(sku, 0) < 0:
            problems.append(f"stock of {sku} is negative")
    if initial_money is not None:
        total = sum(payment.balances.values()) + sum(c.amount for c in payment.charges.values())
        if total != initial_money:
            problems.append(f"money: balances + charges = {total} != {initial_money}")
    for name, state in participants.items():
        twice = {k: n for k, n in getattr(state, "applied", {}).items() if n > 1}
        if twice:
            problems.append(f"{name} applied effects more than once: {twice}")
    return problems
