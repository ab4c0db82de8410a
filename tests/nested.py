"""Participants of the child-saga tests: a trip whose flight is booked by a saga of its own.

``trip`` holds the budget at the ``wallet``, runs the child saga ``flight`` (a seat, then a
ticket, at the ``airline``), books a room at the ``hotel``, and invoices at the ``wallet``
what it read from ``ctx.results["flight"]`` (the child's ticket). The child's input is built
from the parent's input and the hold's reference. Every desk counts what it did and undid by
idempotency key, so a test can tell that nothing applied twice and what was undone, in which
order. A :class:`Trip` names the step that refuses it (a business failure) and a step whose
first attempt is slow.
"""

from __future__ import annotations

import threading
import time

import msgspec

import sagactor as sa


class Trip(msgspec.Struct, frozen=True):
    id: str
    refuse: str = ""  # the step that refuses this trip (in the parent or the child)
    slow: str = ""  # a step whose handler sleeps 0.3 s on its first attempt


class Hold(msgspec.Struct, frozen=True):
    ref: str


class FlightOrder(msgspec.Struct, frozen=True):
    trip: str
    hold: str
    refuse: str = ""
    slow: str = ""


class Ticket(msgspec.Struct, frozen=True):
    number: str
    hold: str


class Did(msgspec.Struct, frozen=True):
    key: str
    note: str = ""


class Undid(msgspec.Struct, frozen=True):
    key: str


class Book(msgspec.Struct):
    did: dict[str, int] = {}
    undid: dict[str, int] = {}
    notes: dict[str, str] = {}
    order: list[str] = []  # every key done and undone ("-" before an undone one), in order

    def net(self, key: str) -> int:
        return self.did.get(key, 0) - self.undid.get(key, 0)


class _Desk(sa.Participant[Book]):
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def initial_state(self) -> Book:
        return Book()

    @sa.evolve
    def _did(self, state: Book, change: Did) -> None:
        state.did[change.key] = state.did.get(change.key, 0) + 1
        state.notes[change.key] = change.note
        state.order.append(change.key)

    @sa.evolve
    def _undid(self, state: Book, change: Undid) -> None:
        state.undid[change.key] = state.undid.get(change.key, 0) + 1
        state.order.append(f"-{change.key}")

    def _do(self, ctx: sa.StepContext, refuse: str, slow: str, note: str = "") -> None:
        if slow == ctx.step and ctx.attempt == 1:
            time.sleep(0.3)
        if refuse == ctx.step:
            raise sa.StepFailed(f"{self.name} refuses at {ctx.step}")
        ctx.record(Did(ctx.idempotency_key, note))


class Wallet(_Desk):
    name = "wallet"

    @sa.action("hold")
    def hold(self, ctx: sa.StepContext, trip: Trip) -> Hold:
        self._do(ctx, trip.refuse, trip.slow)
        return Hold(f"hold-{trip.id}")

    @sa.compensation("hold")
    def release(self, ctx: sa.StepContext, trip: Trip, done: Hold) -> None:
        ctx.record(Undid(ctx.idempotency_key))

    @sa.action("invoice")
    def invoice(self, ctx: sa.StepContext, trip: Trip) -> str:
        ticket = ctx.results["flight"]
        typed = isinstance(ticket, Ticket)
        self._do(ctx, trip.refuse, trip.slow, f"{ticket.number if typed else ticket} {typed}")
        return f"invoice-{trip.id}"


class Airline(_Desk):
    name = "airline"

    @sa.action("seat")
    def seat(self, ctx: sa.StepContext, order: FlightOrder) -> str:
        self._do(ctx, order.refuse, order.slow, order.hold)
        return f"seat-{order.trip}"

    @sa.compensation("seat")
    def free_seat(self, ctx: sa.StepContext, order: FlightOrder, done: str) -> None:
        ctx.record(Undid(ctx.idempotency_key))

    @sa.action("ticket")
    def ticket(self, ctx: sa.StepContext, order: FlightOrder) -> Ticket:
        self._do(ctx, order.refuse, order.slow, ctx.results["seat"])
        return Ticket(f"tkt-{order.trip}", order.hold)

    @sa.compensation("ticket")
    def void(self, ctx: sa.StepContext, order: FlightOrder, done: Ticket) -> None:
        ctx.record(Undid(ctx.idempotency_key))


class Hotel(_Desk):
    name = "hotel"

    @sa.action("room")
    def room(self, ctx: sa.StepContext, trip: Trip) -> str:
        self._do(ctx, trip.refuse, trip.slow)
        return f"room-{trip.id}"

    @sa.compensation("room")
    def free_room(self, ctx: sa.StepContext, trip: Trip, done: str) -> None:
        ctx.record(Undid(ctx.idempotency_key))


def desks() -> list[sa.Participant[Book]]:
    return [Wallet(), Airline(), Hotel()]


FLIGHT = sa.Saga(
    "flight",
    [sa.Step("seat", "airline", "seat"), sa.Step("ticket", "airline", "ticket")],
    input_type=FlightOrder,
)


def flight_order(given: sa.ChildInput) -> FlightOrder:
    trip: Trip = given.input
    return FlightOrder(trip.id, given.results["hold"].ref, trip.refuse, trip.slow)


TRIP = sa.Saga(
    "trip",
    [
        sa.Step("hold", "wallet", "hold"),
        sa.Child("flight", FLIGHT, input=flight_order),
        sa.Step("room", "hotel", "room"),
        sa.Step("invoice", "wallet", "invoice", compensable=False),
    ],
    input_type=Trip,
)
