"""Participants of the parallel-group tests: a trip booked at three desks at once.

``hold`` (the budget) runs first; then ``flight``, ``hotel`` and ``car`` run as one
:class:`sagactor.Parallel` group; then ``invoice`` reads the three bookings from
``ctx.results``. Every desk counts what it booked and cancelled (by idempotency key) and
when each handler ran, so a test can tell that the members overlapped, that nothing applied
twice, and what was undone. A :class:`Trip` names the step that refuses it (a business
failure, the same on every delivery) and how long a step's first attempt takes.
"""

from __future__ import annotations

import threading
import time

import msgspec

import sagactor as sa


class Trip(msgspec.Struct, frozen=True):
    id: str
    refuse: str = ""  # the step that refuses this trip
    slow: dict[str, float] = {}  # step -> seconds its handler sleeps on its first attempt


class Booking(msgspec.Struct, frozen=True):
    ref: str
    desk: str


class Invoice(msgspec.Struct, frozen=True):
    lines: list[str]


class Booked(msgspec.Struct, frozen=True):
    key: str


class Cancelled(msgspec.Struct, frozen=True):
    key: str


class Books(msgspec.Struct):
    booked: dict[str, int] = {}
    cancelled: dict[str, int] = {}

    def net(self, key: str) -> int:
        """1 while the booking ``key`` stands, 0 when it never applied or was cancelled."""
        return self.booked.get(key, 0) - self.cancelled.get(key, 0)


class Desk(sa.Participant[Books]):
    """Books ``book`` and cancels it; notes when each action handler ran (in memory)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ran: dict[str, tuple[float, float]] = {}  # idempotency key -> (start, end)
        self.lock = threading.Lock()

    def initial_state(self) -> Books:
        return Books()

    @sa.action("book")
    def book(self, ctx: sa.StepContext, trip: Trip) -> Booking:
        began = time.monotonic()
        if ctx.attempt == 1 and trip.slow.get(ctx.step):
            time.sleep(trip.slow[ctx.step])
        if trip.refuse == ctx.step:
            raise sa.StepFailed(f"{self.name} refuses {trip.id}")
        ctx.record(Booked(ctx.idempotency_key))
        with self.lock:
            self.ran[ctx.idempotency_key] = (began, time.monotonic())
        return Booking(f"{self.name}-{trip.id}", self.name)

    @sa.compensation("book")
    def cancel(self, ctx: sa.StepContext, trip: Trip, done: Booking) -> None:
        ctx.record(Cancelled(ctx.idempotency_key))

    @sa.evolve
    def _booked(self, state: Books, change: Booked) -> None:
        state.booked[change.key] = state.booked.get(change.key, 0) + 1

    @sa.evolve
    def _cancelled(self, state: Books, change: Cancelled) -> None:
        state.cancelled[change.key] = state.cancelled.get(change.key, 0) + 1


class Accounts(Desk):
    """Writes the invoice from the three bookings (typed, from ``ctx.results``)."""

    @sa.action("invoice")
    def invoice(self, ctx: sa.StepContext, trip: Trip) -> Invoice:
        bookings = [ctx.results[name] for name in MEMBERS]
        if trip.refuse == ctx.step:
            raise sa.StepFailed(f"{self.name} refuses {trip.id}")
        if not all(isinstance(b, Booking) for b in bookings):
            raise sa.StepFailed(f"untyped results: {bookings!r}")
        ctx.record(Booked(ctx.idempotency_key))
        return Invoice([b.ref for b in bookings])

    @sa.compensation("invoice")
    def void(self, ctx: sa.StepContext, trip: Trip, done: Invoice) -> None:
        ctx.record(Cancelled(ctx.idempotency_key))


MEMBERS = ("flight", "hotel", "car")
DESKS = ("budget", "airline", "hotels", "rentals", "accounts")
OWNER = {"hold": "budget", "flight": "airline", "hotel": "hotels", "car": "rentals"}
OWNER["invoice"] = "accounts"


def desks() -> list[sa.Participant[Books]]:
    return [Desk("budget"), Desk("airline"), Desk("hotels"), Desk("rentals"), Accounts("accounts")]


def trip_saga(*, car_timeout: float | None = None, retry: sa.RetryPolicy | None = None) -> sa.Saga:
    """hold, then flight | hotel | car at once, then invoice."""
    policy = retry or sa.RetryPolicy()
    return sa.Saga(
        "trip",
        [
            sa.Step("hold", "budget", "book"),
            sa.Parallel(
                [
                    sa.Step("flight", "airline", "book", retry=policy),
                    sa.Step("hotel", "hotels", "book", retry=policy),
                    sa.Step("car", "rentals", "book", retry=policy, timeout=car_timeout),
                ]
            ),
            sa.Step("invoice", "accounts", "invoice"),
        ],
        input_type=Trip,
    )


def books(rt: sa.Runtime) -> dict[str, Books]:
    return {name: rt.state(name) for name in DESKS}


def net(rt: sa.Runtime, saga_id: str) -> dict[str, int]:
    """Each step's standing effect for one saga (1: booked, 0: none or cancelled)."""
    states = books(rt)
    return {step: states[desk].net(f"{saga_id}/{step}") for step, desk in OWNER.items()}


def problems(rt: sa.Runtime, saga_id: str) -> list[str]:
    """Effects applied or undone twice, undone without being done (empty when none)."""
    found = []
    for step, desk in OWNER.items():
        state = rt.state(desk)
        key = f"{saga_id}/{step}"
        booked, cancelled = state.booked.get(key, 0), state.cancelled.get(key, 0)
        if booked > 1 or cancelled > booked:
            found.append(f"{key}: booked {booked}x, cancelled {cancelled}x")
    return found
