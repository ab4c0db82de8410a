"""The shop's messages: its order, and the events of its native choreography
(``shop.order_choreography``).

OrderCreated fans out to inventory and payment; shipping joins their answers and ships or
cancels; a cancellation is undone backwards (inventory releases, then payment refunds).
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CustomerNotified",
    "InventoryFailed",
    "InventoryReleased",
    "InventoryReserved",
    "Order",
    "OrderCancelled",
    "OrderCreated",
    "OrderShipped",
    "PaymentFailed",
    "PaymentProcessed",
    "PaymentRefunded",
]


class Order(msgspec.Struct, frozen=True):
    id: str
    customer: str
    sku: str
    qty: int
    amount: int
    address: str = "1 Main St"


class OrderCreated(msgspec.Struct, frozen=True):
    order: Order


class InventoryReserved(msgspec.Struct, frozen=True):
    order: Order


class InventoryFailed(msgspec.Struct, frozen=True):
    order: Order
    reason: str


class PaymentProcessed(msgspec.Struct, frozen=True):
    order: Order


class PaymentFailed(msgspec.Struct, frozen=True):
    order: Order
    reason: str


class OrderShipped(msgspec.Struct, frozen=True):
    order: Order


class OrderCancelled(msgspec.Struct, frozen=True):
    order: Order
    reason: str


class InventoryReleased(msgspec.Struct, frozen=True):
    order: Order


class PaymentRefunded(msgspec.Struct, frozen=True):
    order: Order


class CustomerNotified(msgspec.Struct, frozen=True):
    order: Order
