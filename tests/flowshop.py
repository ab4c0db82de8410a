"""Participants of the saga-model tests (results between steps, pivot, deadline): a shop of
their own, whose states say what each handler read from ``ctx.results``.

``charge`` returns a :class:`Payment`; ``ship`` reads it and returns a :class:`Parcel`;
``confirm`` (an e-mail) reads the parcel. Compensations read the earlier results too. Every
effect is recorded with what it read and whether it came typed, so a test can compare the
values live and after a restart. An :class:`Order` may name the step that refuses it
(``refuse_at``: a business failure, the same on every delivery) and how many times the
confirmation fails before it goes through (``mail_failures``).
"""

from __future__ import annotations

import threading

import msgspec

import sagactor as sa


class Order(msgspec.Struct, frozen=True):
    id: str
    refuse_at: str = ""
    mail_failures: int = 0


class Payment(msgspec.Struct, frozen=True):
    payment_id: str
    amount: int


class Parcel(msgspec.Struct, frozen=True):
    tracking: str
    payment_id: str


class Effect(msgspec.Struct, frozen=True):
    """One applied effect: what it is for (an order id) and what it read."""

    order: str
    read: str
    typed: bool


class Effects(msgspec.Struct):
    done: list[Effect] = []
    undone: list[Effect] = []

    def count(self, order: str) -> tuple[int, int]:
        return (
            sum(e.order == order for e in self.done),
            sum(e.order == order for e in self.undone),
        )


class Did(msgspec.Struct, frozen=True):
    effect: Effect


class Undid(msgspec.Struct, frozen=True):
    effect: Effect


class _Recorder(sa.Participant[Effects]):
    def initial_state(self) -> Effects:
        return Effects()

    @sa.evolve
    def _did(self, state: Effects, change: Did) -> None:
        state.done.append(change.effect)

    @sa.evolve
    def _undid(self, state: Effects, change: Undid) -> None:
        state.undone.append(change.effect)


class Payments(_Recorder):
    name = "payments"

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, order: Order) -> Payment:
        if order.refuse_at == "charge":
            raise sa.StepFailed("card declined")
        payment = Payment(f"pay-{ctx.idempotency_key}", 100)
        ctx.record(Did(Effect(order.id, payment.payment_id, typed=True)))
        return payment

    @sa.compensation("charge")
    def refund(self, ctx: sa.StepContext, order: Order, done: Payment) -> None:
        charged = ctx.results["charge"]  # the same Payment as ``done``
        read = charged.payment_id if charged == done else f"mismatch {charged!r} {done!r}"
        ctx.record(Undid(Effect(order.id, read, isinstance(charged, Payment))))


class Shipping(_Recorder):
    name = "shipping"

    @sa.action("ship")
    def ship(self, ctx: sa.StepContext, order: Order) -> Parcel:
        payment = ctx.results["charge"]
        if order.refuse_at == "ship":
            raise sa.StepFailed("no courier")
        ctx.record(Did(Effect(order.id, payment.payment_id, isinstance(payment, Payment))))
        return Parcel(f"trk-{order.id}", payment.payment_id)

    @sa.compensation("ship")
    def recall(self, ctx: sa.StepContext, order: Order, done: Parcel) -> None:
        payment, parcel = ctx.results["charge"], ctx.results["ship"]
        typed = isinstance(payment, Payment) and isinstance(parcel, Parcel)
        ctx.record(Undid(Effect(order.id, f"{payment.payment_id} {parcel.tracking}", typed)))


class Mailer(_Recorder):
    """Sends the confirmation; it fails ``order.mail_failures`` times first (counted in
    memory, so a restarted mailer fails that many times again)."""

    name = "mailer"

    def __init__(self) -> None:
        self.tries: dict[str, int] = {}
        self.lock = threading.Lock()

    @sa.action("confirm")
    def confirm(self, ctx: sa.StepContext, order: Order) -> None:
        parcel = ctx.results["ship"]
        with self.lock:
            self.tries[order.id] = tries = self.tries.get(order.id, 0) + 1
        if order.refuse_at == "confirm" or tries <= order.mail_failures:
            raise sa.StepFailed("the mail server refuses")
        ctx.record(Did(Effect(order.id, parcel.tracking, isinstance(parcel, Parcel))))

    @sa.compensation("confirm")
    def retract(self, ctx: sa.StepContext, order: Order, done: None) -> None:
        ctx.record(Undid(Effect(order.id, ctx.results["ship"].tracking, typed=True)))


def shop() -> list[sa.Participant[Effects]]:
    return [Payments(), Shipping(), Mailer()]


FAST = sa.RetryPolicy(backoff=0.005, max_backoff=0.02)


def flow_saga(*, deadline: float | None = None) -> sa.Saga:
    """charge, ship, confirm: all compensable (a refused confirmation undoes the order)."""
    return sa.Saga(
        "flow",
        [
            sa.Step("charge", "payments", "charge"),
            sa.Step("ship", "shipping", "ship"),
            sa.Step("confirm", "mailer", "confirm"),
        ],
        input_type=Order,
        deadline=deadline,
    )


def pivot_saga(*, deadline: float | None = None, retry: sa.RetryPolicy = FAST) -> sa.Saga:
    """charge, then ship as the pivot, then a retriable confirmation."""
    return sa.Saga(
        "pivot",
        [
            sa.Step("charge", "payments", "charge"),
            sa.Step("ship", "shipping", "ship", pivot=True),
            sa.Step("confirm", "mailer", "confirm", retriable=True, retry=retry),
        ],
        input_type=Order,
        deadline=deadline,
    )
