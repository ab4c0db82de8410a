"""One quarantined saga among 1,000 in flight after a real ``kill -9`` (DESIGN 5.10).

A child process starts 999 trips and one saga of a definition the next version of the app no
longer registers, then waits (its payment handler never returns) until the parent kills it with
SIGKILL. Before, reopening that journal raised ``UnknownSagaType`` and no saga recovered at all.
Now the 999 finish, each booking applied once (and undone once where the payment failed); the
other one is quarantined, visible with its error, and finishes once its definition is
registered again and ``retry_quarantined`` is called.

The child is this module run as a script: ``python -m tests.test_quarantine_after_kill DB``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

import sagactor as sa

from .killed_child import run_until_killed

TRIPS = 999
WAIT = 60.0


class Trip(msgspec.Struct, frozen=True):
    destination: str
    price: int


class Booked(msgspec.Struct, frozen=True):
    key: str


class Unbooked(msgspec.Struct, frozen=True):
    key: str


class Rooms(msgspec.Struct):
    booked: list[str] = []
    unbooked: list[str] = []


class Hotel(sa.Participant[Rooms]):
    name = "hotel"

    def initial_state(self) -> Rooms:
        return Rooms()

    @sa.action("book")
    def book(self, ctx: sa.StepContext, trip: Trip) -> str:
        ctx.record(Booked(ctx.saga_id))
        return f"room for {trip.destination}"

    @sa.compensation("book")
    def unbook(self, ctx: sa.StepContext, trip: Trip, done: str) -> None:
        ctx.record(Unbooked(ctx.saga_id))

    @sa.evolve
    def _booked(self, state: Rooms, change: Booked) -> None:
        state.booked.append(change.key)

    @sa.evolve
    def _unbooked(self, state: Rooms, change: Unbooked) -> None:
        state.unbooked.append(change.key)


class Bank(sa.Participant[None]):
    """Refuses prices over 100; in the child, ``stall`` keeps every payment waiting."""

    name = "bank"

    def __init__(self, stall: threading.Event | None = None) -> None:
        self.stall = stall

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, trip: Trip) -> int:
        if self.stall is not None:
            self.stall.wait(WAIT)
        if trip.price > 100:
            raise sa.StepFailed("card declined")
        return trip.price


def trip_saga(name: str) -> sa.Saga:
    steps = [
        sa.Step("book", "hotel", "book"),
        sa.Step("pay", "bank", "charge", compensable=False),
    ]
    return sa.Saga(name, steps, input_type=Trip)


TRIP = trip_saga("trip")
LEGACY = trip_saga("legacy_trip")  # the next version of the app no longer registers it


def price(i: int) -> int:
    return 500 if i % 10 == 0 else 50  # every tenth payment fails: that trip is undone


def child(db: Path) -> None:
    """Start every saga, say so, then stall until killed."""
    rt = sa.Runtime.open(
        db, participants=[Hotel(), Bank(stall=threading.Event())], sagas=[TRIP, LEGACY]
    )
    trips = [Trip(f"city-{i}", price(i)) for i in range(TRIPS)]
    runs = rt.start_many(TRIP, trips, saga_ids=[f"t{i}" for i in range(TRIPS)])
    runs.append(rt.start(LEGACY, Trip("atlantis", 10), saga_id="old"))
    print(f"ack {len(runs)}", flush=True)
    time.sleep(WAIT)


@pytest.mark.timeout(300)
def test_one_quarantined_saga_among_a_thousand_after_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "trips.db"
    assert run_until_killed("tests.test_quarantine_after_kill", db, f"ack {TRIPS + 1}") == []

    with sa.Runtime.open(db, participants=[Hotel(), Bank()], sagas=[TRIP]) as rt:
        outcomes = {f"t{i}": rt.run(f"t{i}").result(WAIT) for i in range(TRIPS)}
        for i in range(TRIPS):
            expected = sa.SagaStatus.COMPENSATED if price(i) > 100 else sa.SagaStatus.COMPLETED
            assert outcomes[f"t{i}"].status is expected, outcomes[f"t{i}"]

        # The other one: set aside, named, with its error; waiting for it says so.
        quarantined = rt.quarantined()
        assert list(quarantined) == ["old"]
        assert isinstance(quarantined["old"].cause, sa.UnknownSagaType)
        outcome = rt.status("old")
        assert outcome.status is sa.SagaStatus.QUARANTINED
        assert "legacy_trip" in outcome.reason
        with pytest.raises(sa.SagaQuarantined):
            rt.run("old").result(WAIT)

        rt.define(LEGACY)
        assert rt.retry_quarantined("old").result(WAIT).status is sa.SagaStatus.COMPLETED
        assert rt.quarantined() == {}

        rooms = rt.state("hotel")
        booked, unbooked = Counter(rooms.booked), Counter(rooms.unbooked)
        everyone = {*(f"t{i}" for i in range(TRIPS)), "old"}
        assert set(booked) == everyone
        assert max(booked.values()) == 1  # effectively once, across the kill
        assert set(unbooked) == {f"t{i}" for i in range(TRIPS) if price(i) > 100}
        assert max(unbooked.values()) == 1
        assert rt.journal.open_streams("saga/") == []


if __name__ == "__main__":
    child(Path(sys.argv[1]))
