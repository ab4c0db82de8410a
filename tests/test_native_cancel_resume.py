"""Cancel and resume in native choreography (and in step-list choreography): never a silent
no-op.

``rt.cancel(id)`` on a natively choreographed saga used to log an ``AttributeError`` and do
nothing; ``rt.resume(id)`` did nothing and ``result()`` then blocked forever. Now a
``Choreography(..., cancel=Event)`` publishes its cancel event into the running flow: the
forward flow stops where it is and the participants undo their own work through their ``@on``
reactions, so the saga ends compensated with the cancel's reason. A saga past its point of no
return completes (the cancel is dropped with a warning), and a choreography without a cancel
event refuses the cancel with an error that names the fix. Resume re-delivers what got stuck.
All of it holds in memory and on SQLite, with many sagas at once, and across a restart in the
middle of the undoing.

The trip: ``Booked`` fans out to the hotel and the airline; the agent joins their answers and
tickets (the point of no return: after ``Ticketed`` the trip can only complete, through the
mailer's ``Mailed``). A cancel (``TripCancelled``) makes the hotel free its room, then the
airline its seat (``SeatFreed`` ends the trip, undone).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


# -- events ------------------------------------------------------------------------------------


class Booked(msgspec.Struct, frozen=True):
    trip: str
    hold: str = ""  # the reaction that waits on the trip's gate ("flight", "free", "mail")
    full: bool = False  # the hotel has no room


class HotelHeld(msgspec.Struct, frozen=True):
    trip: str


class HotelFull(msgspec.Struct, frozen=True):
    trip: str
    reason: str


class SeatHeld(msgspec.Struct, frozen=True):
    trip: str


class Ticketed(msgspec.Struct, frozen=True):
    trip: str


class Mailed(msgspec.Struct, frozen=True):
    trip: str


class TripCancelled(msgspec.Struct, frozen=True):
    trip: str
    reason: str


class HotelFreed(msgspec.Struct, frozen=True):
    trip: str


class SeatFreed(msgspec.Struct, frozen=True):
    trip: str


# -- participants ------------------------------------------------------------------------------


class Took(msgspec.Struct, frozen=True):
    trip: str


class Gave(msgspec.Struct, frozen=True):
    trip: str


class Holds(msgspec.Struct):
    held: list[str] = []
    freed: list[str] = []


GATES: dict[str, tuple[threading.Event, threading.Event]] = {}  # trip -> (entered, release)
BROKEN: set[str] = set()  # reactions that raise while named here


def gate(trip: str, where: str) -> tuple[threading.Event, threading.Event]:
    return GATES.setdefault(f"{trip}/{where}", (threading.Event(), threading.Event()))


def _wait_gate(event: Booked | HotelFreed | Ticketed, where: str, hold: str) -> None:
    if hold == where:
        entered, release = gate(event.trip, where)
        entered.set()
        release.wait(WAIT)


def _broken(where: str) -> None:
    if where in BROKEN:
        raise RuntimeError(f"{where} is broken")


class Keeper(sa.Participant[Holds]):
    """Holds something per trip and frees it; the state says what it did."""

    def initial_state(self) -> Holds:
        return Holds()

    def take(self, ctx: sa.StepContext, trip: str) -> None:
        ctx.record(Took(trip))

    def give(self, ctx: sa.StepContext, trip: str) -> None:
        if trip in self.state.held:
            ctx.record(Gave(trip))

    @sa.evolve
    def _took(self, state: Holds, change: Took) -> None:
        state.held.append(change.trip)

    @sa.evolve
    def _gave(self, state: Holds, change: Gave) -> None:
        state.held.remove(change.trip)
        state.freed.append(change.trip)


class Hotel(Keeper):
    name = "hotel"

    @sa.on(Booked, emits=(HotelHeld, HotelFull))
    def on_booked(self, ctx: sa.StepContext, event: Booked) -> None:
        if event.full:
            ctx.publish(HotelFull(event.trip, "no room"))
            return
        self.take(ctx, event.trip)
        ctx.publish(HotelHeld(event.trip))

    @sa.on(TripCancelled, emits=(HotelFreed,))
    def on_cancelled(self, ctx: sa.StepContext, event: TripCancelled) -> None:
        self.give(ctx, event.trip)
        ctx.publish(HotelFreed(event.trip))


class Airline(Keeper):
    name = "airline"

    def __init__(self, hold: dict[str, str] | None = None) -> None:
        self.hold = hold or {}

    @sa.on(Booked, emits=(SeatHeld,))
    def on_booked(self, ctx: sa.StepContext, event: Booked) -> None:
        _wait_gate(event, "flight", event.hold)
        self.take(ctx, event.trip)
        ctx.publish(SeatHeld(event.trip))

    @sa.on(HotelFreed, emits=(SeatFreed,))
    def on_hotel_freed(self, ctx: sa.StepContext, event: HotelFreed) -> None:
        _wait_gate(event, "free", self.hold.get(event.trip, ""))
        _broken("free")
        self.give(ctx, event.trip)
        ctx.publish(SeatFreed(event.trip))


class Ticket(msgspec.Struct, frozen=True):
    trip: str


class Mail(msgspec.Struct, frozen=True):
    trip: str


class Noted(msgspec.Struct, frozen=True):
    trip: str
    side: str
    failure: str = ""


class Desk(msgspec.Struct):
    sides: dict[str, dict[str, str]] = {}
    tickets: list[str] = []


class Agent(sa.Participant[Desk]):
    """Joins the hotel's and the airline's answers; tickets once both held (no undo)."""

    name = "agent"

    def __init__(self, hold: dict[str, str] | None = None) -> None:
        self.hold = hold or {}

    def initial_state(self) -> Desk:
        return Desk()

    @sa.on(HotelHeld, emits=(Ticketed, TripCancelled))
    def on_hotel(self, ctx: sa.StepContext, event: HotelHeld) -> None:
        self._join(ctx, event.trip, "hotel", "")

    @sa.on(HotelFull, emits=(TripCancelled,))
    def on_full(self, ctx: sa.StepContext, event: HotelFull) -> None:
        self._join(ctx, event.trip, "hotel", event.reason)

    @sa.on(SeatHeld, emits=(Ticketed, TripCancelled))
    def on_seat(self, ctx: sa.StepContext, event: SeatHeld) -> None:
        self._join(ctx, event.trip, "airline", "")

    def _join(self, ctx: sa.StepContext, trip: str, side: str, failure: str) -> None:
        ctx.record(Noted(trip, side, failure))
        sides = self.state.sides[trip]
        if len(sides) < 2:
            return
        failures = [f for f in sides.values() if f]
        if failures:
            ctx.publish(TripCancelled(trip, "; ".join(failures)))
        else:
            _wait_gate(Ticketed(trip), "ticket", self.hold.get(trip, ""))
            ctx.record(Ticket(trip))
            ctx.publish(Ticketed(trip))

    @sa.evolve
    def _noted(self, state: Desk, change: Noted) -> None:
        state.sides.setdefault(change.trip, {})[change.side] = change.failure

    @sa.evolve
    def _ticket(self, state: Desk, change: Ticket) -> None:
        state.tickets.append(change.trip)


class Mailer(sa.Participant[list[str]]):
    name = "mailer"

    def __init__(self, hold: dict[str, str] | None = None) -> None:
        self.hold = hold or {}

    def initial_state(self) -> list[str]:
        return []

    @sa.on(Ticketed, emits=(Mailed,))
    def on_ticketed(self, ctx: sa.StepContext, event: Ticketed) -> None:
        _wait_gate(event, "mail", self.hold.get(event.trip, ""))
        _broken("mail")
        ctx.record(Mail(event.trip))
        ctx.publish(Mailed(event.trip))

    @sa.evolve
    def _mail(self, state: list[str], change: Mail) -> None:
        state.append(change.trip)


TRIP = sa.Choreography(
    "trip", start=Booked, completed=(Mailed,), failed=(SeatFreed,), cancel=TripCancelled
)
UNCANCELLABLE = sa.Choreography(
    "trip-plain", start=Booked, completed=(Mailed,), failed=(SeatFreed,)
)


def participants(hold: dict[str, str] | None = None) -> list[sa.Participant[Any]]:
    """``hold`` maps a trip to the chain reaction ("free") or the mail ("mail") that waits."""
    return [Hotel(), Airline(hold), Agent(hold), Mailer(hold)]


@pytest.fixture(params=["memory", "sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., sa.Runtime]:
    journal = MemoryJournal()

    def open_runtime(hold: dict[str, str] | None = None) -> sa.Runtime:
        people = participants(hold)
        sagas = [TRIP, UNCANCELLABLE]
        if request.param == "sqlite":
            return sa.Runtime.open(tmp_path / "trips.db", participants=people, sagas=sagas)
        return sa.Runtime.in_memory(journal=journal, participants=people, sagas=sagas)

    return open_runtime


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    yield
    for _, release in GATES.values():
        release.set()
    GATES.clear()
    BROKEN.clear()


def _wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.005)


def _books(rt: sa.Runtime) -> tuple[Holds, Holds, Desk, list[str]]:
    return rt.state("hotel"), rt.state("airline"), rt.state("agent"), rt.state("mailer")


# -- cancel ------------------------------------------------------------------------------------


def test_a_cancelled_trip_is_undone_by_its_participants(opener: Callable[..., sa.Runtime]) -> None:
    entered, release = gate("t1", "flight")
    with opener() as rt:
        run = rt.start(TRIP, Booked("t1", hold="flight"), saga_id="t1")
        assert entered.wait(WAIT)  # the airline is holding a seat: the trip is mid-flight
        _wait_for(lambda: rt.state("hotel").held == ["t1"])
        rt.cancel("t1", "changed plans")
        release.set()
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "changed plans"
        hotel, airline, agent, mailer = _books(rt)
        assert (hotel.held, hotel.freed) == ([], ["t1"])
        assert (airline.held, airline.freed) == ([], ["t1"])  # the seat taken after the cancel
        assert agent.tickets == []
        assert mailer == []
        history = rt.history("t1")
        assert [e.type for e in history if e.type == "SagaCancelled"] == ["SagaCancelled"]
        cancel = [e for e in history if e.type == "TripCancelled"]
        assert [(e.source, e.event) for e in cancel] == [
            ("cancel", TripCancelled("t1", "changed plans"))
        ]
        # The seat's answer came after the cancel: journaled, but no longer delivered.
        assert "SeatHeld" in [e.type for e in history]
        assert "Ticketed" not in [e.type for e in history]
        # cancelling again, or a trip that ended, changes nothing
        rt.cancel("t1")
        assert rt.history("t1") == history


def test_many_trips_at_once_cancel_half(opener: Callable[..., sa.Runtime]) -> None:
    trips = [f"m{i}" for i in range(20)]
    with opener() as rt:
        # The airline waits in the first trip: every trip's seat is pending behind it.
        entered, release = gate(trips[0], "flight")
        runs = [
            rt.start(TRIP, Booked(t, hold="flight" * (t == trips[0])), saga_id=t) for t in trips
        ]
        assert entered.wait(WAIT)
        for t in trips[::2]:
            rt.cancel(t, f"cancel {t}")
        release.set()
        outcomes = {run.id: run.result(WAIT) for run in runs}
        hotel, airline, agent, mailer = _books(rt)
    for i, t in enumerate(trips):
        if i % 2 == 0:
            assert outcomes[t].status is sa.SagaStatus.COMPENSATED, t
            assert outcomes[t].reason == f"cancel {t}"
            assert t in hotel.freed
            assert t in airline.freed
        else:
            assert outcomes[t].status is sa.SagaStatus.COMPLETED, t
            assert t in agent.tickets
            assert t in mailer
    assert sorted(hotel.held) == sorted(airline.held) == sorted(trips[1::2])


def test_a_cancel_past_the_point_of_no_return_lets_the_trip_complete(
    opener: Callable[..., sa.Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    entered, release = gate("late", "mail")
    with opener(hold={"late": "mail"}) as rt:
        run = rt.start(TRIP, Booked("late"), saga_id="late")
        assert entered.wait(WAIT)  # ticketed, the mailer is mailing
        with caplog.at_level(logging.WARNING, logger="sagactor"):
            rt.cancel("late", "too late")
            release.set()
            outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPLETED
        assert "point of no return (Ticketed was published)" in caplog.text
        hotel, airline, _agent, mailer = _books(rt)
        assert hotel.freed == []
        assert airline.freed == []
        assert mailer == ["late"]
        assert "SagaCancelled" not in [e.type for e in rt.history("late")]


def test_a_cancel_waits_for_the_reactions_in_flight_to_know_if_it_is_too_late(
    opener: Callable[..., sa.Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    """The agent is ticketing when the cancel comes: the cancel waits for its answer, sees the
    ticket (the point of no return), and lets the trip complete rather than undo the hotel
    and the seat under an issued ticket."""
    entered, release = gate("race", "ticket")
    with opener(hold={"race": "ticket"}) as rt:
        run = rt.start(TRIP, Booked("race"), saga_id="race")
        assert entered.wait(WAIT)
        with caplog.at_level(logging.WARNING, logger="sagactor"):
            rt.cancel("race", "now")
            release.set()
            outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPLETED
        assert "point of no return (Ticketed was published)" in caplog.text
        hotel, airline, agent, mailer = _books(rt)
        assert hotel.freed == []
        assert airline.freed == []
        assert agent.tickets == ["race"]
        assert mailer == ["race"]


def test_a_trip_already_undoing_itself_ignores_the_cancel(
    opener: Callable[..., sa.Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    entered, release = gate("full", "flight")
    with opener() as rt:
        run = rt.start(TRIP, Booked("full", hold="flight", full=True), saga_id="full")
        assert entered.wait(WAIT)
        with caplog.at_level(logging.WARNING, logger="sagactor"):
            rt.cancel("full", "never mind")
            release.set()
            outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "no room" in outcome.reason  # its own failure, undone once
        assert "already undoes its work (HotelFull was published)" in caplog.text
        hotel, airline, _, _ = _books(rt)
        assert airline.freed == ["full"]
        assert airline.held == []
        assert hotel.held == []


def test_a_choreography_without_cancel_event_refuses_cancel_by_name() -> None:
    with sa.Runtime.in_memory(participants=participants(), sagas=[UNCANCELLABLE]) as rt:
        run = rt.start(UNCANCELLABLE, Booked("plain"))
        with pytest.raises(sa.DefinitionError, match=r"Choreography\(\.\.\., cancel=SomeEvent\)"):
            rt.cancel(run.id)
        assert run.result(WAIT).status is sa.SagaStatus.COMPLETED
        with pytest.raises(sa.UnknownSaga):
            rt.cancel("no-such-trip")


def test_a_cancel_event_that_cannot_undo_is_refused_when_defined() -> None:
    class Other(msgspec.Struct, frozen=True):
        ticket: int  # not in Booked, and not 'reason'

    with pytest.raises(sa.DefinitionError, match="needs ticket"):
        sa.Choreography("bad", start=Booked, completed=(Mailed,), cancel=Other)
    with pytest.raises(sa.DefinitionError, match="neither the start nor a terminal"):
        sa.Choreography("bad", start=Booked, completed=(Mailed,), cancel=Mailed)
    with pytest.raises(sa.DefinitionError, match="not a msgspec Struct"):
        sa.Choreography("bad", start=Booked, completed=(Mailed,), cancel=dict)

    # Registered participants: a cancel nobody reacts to, or one that misses the airline.
    class Quiet(msgspec.Struct, frozen=True):
        trip: str

    with sa.Runtime.in_memory(participants=participants()) as rt:
        quiet = sa.Choreography(
            "quiet", start=Booked, completed=(Mailed,), failed=(SeatFreed,), cancel=Quiet
        )
        with pytest.raises(sa.DefinitionError) as caught:
            rt.define(quiet)
        assert "event Quiet (published by cancel) is handled by no participant" in str(caught.value)
        assert "the cancel event Quiet leads to none of the failed events" in str(caught.value)
        # HotelFreed reaches the airline but not the hotel: the hotel's room stays held.
        half = sa.Choreography(
            "half", start=Booked, completed=(Mailed,), failed=(SeatFreed,), cancel=HotelFreed
        )
        with pytest.raises(sa.DefinitionError, match="'hotel' reacts to Booked but to nothing"):
            rt.define(half)


def test_a_restart_in_the_middle_of_the_undoing_finishes_it(
    opener: Callable[..., sa.Runtime],
) -> None:
    booking, booked = gate("r", "flight")
    freeing, freed = gate("r", "free")
    rt = opener(hold={"r": "free"})
    try:
        rt.start(TRIP, Booked("r", hold="flight"), saga_id="r")
        assert booking.wait(WAIT)
        rt.cancel("r", "stop")
        booked.set()
        assert freeing.wait(WAIT)  # the hotel freed its room; the airline is freeing the seat
        rt.crash()
    finally:
        booked.set()
        freed.set()
        rt.close()
    with opener() as rt:
        outcome = rt.run("r").result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "stop"
        hotel, airline, agent, mailer = _books(rt)
        assert (hotel.held, hotel.freed) == ([], ["r"])
        assert (airline.held, airline.freed) == ([], ["r"])
        assert agent.tickets == []
        assert mailer == []


# -- resume ------------------------------------------------------------------------------------


def test_a_stuck_trip_resumes_where_it_failed(opener: Callable[..., sa.Runtime]) -> None:
    BROKEN.add("mail")
    with opener() as rt:
        run = rt.start(TRIP, Booked("s"), saga_id="s")
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.STUCK
        assert "mail is broken" in outcome.reason
        BROKEN.clear()
        rt.resume("s")
        outcome = run.result(WAIT)  # never blocks: the resumed trip ends again
        assert outcome.status is sa.SagaStatus.COMPLETED
        assert rt.state("mailer") == ["s"]
        assert rt.state("agent").tickets == ["s"]
        types = [e.type for e in rt.history("s")]
        assert types.index("SagaStuck") < types.index("SagaResumed") < types.index("Mailed")
        rt.resume("s")  # a saga that is not stuck stays as it is
        assert rt.run("s").result(WAIT).status is sa.SagaStatus.COMPLETED


def test_a_stuck_trip_resumes_after_a_restart(opener: Callable[..., sa.Runtime]) -> None:
    BROKEN.add("mail")
    with opener() as rt:
        assert rt.start(TRIP, Booked("s2"), saga_id="s2").result(WAIT).status is (
            sa.SagaStatus.STUCK
        )
    BROKEN.clear()
    with opener() as rt:
        assert rt.status("s2").status is sa.SagaStatus.STUCK  # a stuck saga waits for a human
        rt.resume("s2")
        assert rt.run("s2").result(WAIT).status is sa.SagaStatus.COMPLETED
        assert rt.state("mailer") == ["s2"]


def test_a_cancelled_trip_stuck_in_its_undoing_resumes_to_compensated(
    opener: Callable[..., sa.Runtime],
) -> None:
    BROKEN.add("free")
    entered, release = gate("cs", "flight")
    with opener() as rt:
        run = rt.start(TRIP, Booked("cs", hold="flight"), saga_id="cs")
        assert entered.wait(WAIT)
        rt.cancel("cs", "no")
        release.set()
        assert run.result(WAIT).status is sa.SagaStatus.STUCK
    BROKEN.clear()
    with opener() as rt:
        rt.resume("cs")
        outcome = rt.run("cs").result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "no"
        hotel, airline, _, _ = _books(rt)
        assert hotel.held == []
        assert airline.held == []
        assert airline.freed == ["cs"]


# -- step-list choreography: cancel and resume there too ---------------------------------------


class Job(msgspec.Struct, frozen=True):
    block: bool = False


class Counter(sa.Participant[Holds]):
    def initial_state(self) -> Holds:
        return Holds()

    @sa.action("take")
    def take(self, ctx: sa.StepContext, job: Job) -> None:
        if job.block and self.participant_name == "second":
            entered, release = gate(ctx.saga_id, "take")
            entered.set()
            release.wait(WAIT)
        ctx.record(Took(ctx.saga_id))

    @sa.compensation("take")
    def give(self, ctx: sa.StepContext, job: Job, done: None) -> None:
        _broken(f"give-{self.participant_name}")
        ctx.record(Gave(ctx.saga_id))

    @sa.evolve
    def _took(self, state: Holds, change: Took) -> None:
        state.held.append(change.trip)

    @sa.evolve
    def _gave(self, state: Holds, change: Gave) -> None:
        state.held.remove(change.trip)
        state.freed.append(change.trip)


class First(Counter):
    name = "first"


class Second(Counter):
    name = "second"


TWO = sa.Saga(
    "two",
    steps=[
        sa.Step("one", participant="first", action="take"),
        sa.Step("two", participant="second", action="take"),
    ],
    input_type=Job,
)


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_step_list_sagas_cancel_and_resume_in_both_modes(tmp_path: Path, mode: sa.Mode) -> None:
    path = tmp_path / f"{mode}.db"
    entered, release = gate("c", "take")
    BROKEN.add("give-first")
    with sa.Runtime.open(path, participants=[First(), Second()]) as rt:
        run = rt.start(TWO, Job(block=True), saga_id="c", mode=mode)
        assert entered.wait(WAIT)
        rt.cancel("c", "halt")
        release.set()
        assert run.result(WAIT).status is sa.SagaStatus.STUCK  # first's undo is broken
    BROKEN.clear()
    with sa.Runtime.open(path, participants=[First(), Second()], sagas=[TWO]) as rt:
        rt.resume("c")
        outcome = rt.run("c").result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "SagaCancelled" in [e.type for e in rt.history("c")]
        assert rt.state("first").held == []
        assert rt.state("second").held == []
