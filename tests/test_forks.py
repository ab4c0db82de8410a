"""``rt.restart(id, from_step=...)``: a fork of an ended saga that begins part-way, with the
earlier steps' results carried over; it compensates only the steps it ran itself. Both step-list
modes, durable (a crash after the restart resumes the fork), shown in history and from the
shell; wrong requests refused clearly."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

import sagactor as sa
from sagactor.playground.cli import main

WAIT = 10.0


class Trip(msgspec.Struct, frozen=True):
    ref: str


class Booking(msgspec.Struct, frozen=True):
    step: str
    saga: str
    seen: list[str]  # the earlier steps' results this step read (ctx.results)


class Applied(msgspec.Struct, frozen=True):
    key: str


class Undone(msgspec.Struct, frozen=True):
    key: str


class Log(msgspec.Struct):
    applied: list[str] = msgspec.field(default_factory=list)
    undone: list[str] = msgspec.field(default_factory=list)


class Agency(sa.Participant[Log]):
    """Books any step; refuses the steps in ``failing``; holds the steps in ``held`` until
    ``gate`` opens."""

    name = "agency"
    failing: ClassVar[set[str]] = set()
    held: ClassVar[set[str]] = set()
    gate: ClassVar[threading.Event] = threading.Event()

    def initial_state(self) -> Log:
        return Log()

    @sa.evolve
    def applied(self, state: Log, change: Applied) -> None:
        state.applied.append(change.key)

    @sa.evolve
    def undone(self, state: Log, change: Undone) -> None:
        state.undone.append(change.key)

    @sa.action("book")
    def book(self, ctx: sa.StepContext, trip: Trip) -> Booking:
        if ctx.step in type(self).held:
            type(self).gate.wait(WAIT)
        if ctx.step in type(self).failing:
            raise sa.StepFailed(f"no {ctx.step} for {trip.ref}")
        ctx.record(Applied(ctx.idempotency_key))
        return Booking(ctx.step, ctx.saga_id, sorted(ctx.results))

    @sa.compensation("book")
    def cancel(self, ctx: sa.StepContext, trip: Trip, done: Booking) -> None:
        ctx.record(Undone(ctx.idempotency_key))


def _step(name: str) -> sa.Step:
    return sa.Step(name, participant="agency", action="book")


TRIP = sa.Saga(
    "trip", steps=[_step("flight"), _step("hotel"), _step("car"), _step("pay")], input_type=Trip
)
GROUPED = sa.Saga(
    "grouped",
    steps=[_step("flight"), sa.Parallel([_step("hotel"), _step("car")]), _step("pay")],
    input_type=Trip,
)


@pytest.fixture(autouse=True)
def agency_works() -> Iterator[None]:
    Agency.failing, Agency.held = set(), set()
    Agency.gate.set()
    yield
    Agency.failing, Agency.held = set(), set()
    Agency.gate.set()


def open_runtime(path: Path) -> sa.Runtime:
    return sa.Runtime.open(path, participants=[Agency()], sagas=[TRIP, GROUPED])


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_a_fork_begins_at_its_step_with_the_earlier_results(tmp_path: Path, mode: sa.Mode) -> None:
    with open_runtime(tmp_path / "j.db") as rt:
        assert rt.start(TRIP, Trip("r"), saga_id="t", mode=mode).result(WAIT).ok
        run = rt.restart("t", from_step="car")
        assert run.id == "t~1"
        outcome = run.result(WAIT)
        assert outcome.ok
        # Carried: the origin's own results, not run again.
        assert outcome.results["flight"] == Booking("flight", "t", [])
        assert outcome.results["hotel"] == Booking("hotel", "t", ["flight"])
        # Run by the fork, which read the carried results as ctx.results.
        assert outcome.results["car"] == Booking("car", "t~1", ["flight", "hotel"])
        assert outcome.results["pay"] == Booking("pay", "t~1", ["car", "flight", "hotel"])
        applied = rt.state("agency").applied
        assert [key for key in applied if key.startswith("t~1/")] == ["t~1/car", "t~1/pay"]
        started = rt.history("t~1")[0]
        assert started.type == "SagaStarted"
        assert (started.event.origin, started.event.from_step) == ("t", "car")
        assert started.event.carried == {
            "flight": Booking("flight", "t", []),
            "hotel": Booking("hotel", "t", ["flight"]),
        }
        assert rt.status("t~1").status == "completed"
        row = rt.journal.saga_row("t~1")
        assert row is not None
        assert row.status == "completed"
        assert json.loads(row.result or "{}")["flight"]["saga"] == "t"
        # A fork of the fork from a later step carries the steps its origin carried too.
        assert rt.restart("t~1", from_step="pay").result(WAIT).results["flight"].saga == "t"


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_a_failed_fork_compensates_only_the_steps_it_ran(tmp_path: Path, mode: sa.Mode) -> None:
    with open_runtime(tmp_path / "j.db") as rt:
        assert rt.start(TRIP, Trip("r"), saga_id="t", mode=mode).result(WAIT).ok
        Agency.failing = {"pay"}
        outcome = rt.restart("t", from_step="hotel").result(WAIT)
        assert outcome.status == "compensated"
        assert outcome.compensated == ("car", "hotel")
        log = rt.state("agency")
        assert log.undone == ["t~1/car", "t~1/hotel"]  # the carried flight stays booked
        assert "t/flight" in log.applied


def test_a_fork_cannot_carry_a_compensated_step(tmp_path: Path) -> None:
    with open_runtime(tmp_path / "j.db") as rt:
        Agency.failing = {"car"}
        assert rt.start(TRIP, Trip("r"), saga_id="t").result(WAIT).status == "compensated"
        with pytest.raises(sa.OperationRefused, match="step 'flight' of saga 't' does not stand"):
            rt.restart("t", from_step="car")
        Agency.failing = set()
        assert rt.restart("t", from_step="flight").result(WAIT).ok  # the first step: whole
        with pytest.raises(sa.OperationRefused, match="no step 'boat'"):
            rt.restart("t", from_step="boat")


def test_refusals_running_saga_and_parallel_group(tmp_path: Path) -> None:
    with open_runtime(tmp_path / "j.db") as rt:
        assert rt.start(GROUPED, Trip("g"), saga_id="g").result(WAIT).ok
        with pytest.raises(sa.OperationRefused, match="'car' runs in a parallel group"):
            rt.restart("g", from_step="car")
        assert rt.restart("g", from_step="pay").result(WAIT).ok  # after the group: fine
        Agency.held, Agency.gate = {"hotel"}, threading.Event()
        running = rt.start(TRIP, Trip("w"), saga_id="w")
        with pytest.raises(sa.OperationRefused, match="'w' is running, not ended"):
            rt.restart("w", from_step="car")
        Agency.gate.set()
        assert running.result(WAIT).ok


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_a_fork_survives_a_crash_after_the_restart(tmp_path: Path, mode: sa.Mode) -> None:
    path = tmp_path / "j.db"
    rt = open_runtime(path)
    try:
        assert rt.start(TRIP, Trip("r"), saga_id="t", mode=mode).result(WAIT).ok
        Agency.held, Agency.gate = {"car"}, threading.Event()
        assert rt.restart("t", from_step="car").id == "t~1"  # journaled: car is under way
        rt.crash()
    finally:
        Agency.gate.set()
        rt.close()
    Agency.held = set()
    with open_runtime(path) as again:
        outcome = again.run("t~1").result(WAIT)
        assert outcome.ok
        assert outcome.results["hotel"] == Booking("hotel", "t", ["flight"])
        assert outcome.results["car"] == Booking("car", "t~1", ["flight", "hotel"])
        assert again.state("agency").applied.count("t~1/car") == 1


def test_restart_from_the_shell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "j.db"
    with open_runtime(path) as rt:
        assert rt.start(TRIP, Trip("r"), saga_id="t").result(WAIT).ok
    module = tmp_path / "tripmod.py"
    module.write_text(
        "from tests.test_forks import TRIP, GROUPED, Agency\n"
        "sagas = [TRIP, GROUPED]\n"
        "def participants():\n    return [Agency()]\n"
    )
    db, mod = str(path), str(module)
    assert main(["inspect", db, "restart", "t", "--from-step", "car", "-m", mod, "--json"]) == 0
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert printed == {"saga": "t", "fork": "t~1", "written": ["SagaStarted", "StepStarted"]}
    assert main(["inspect", db, "restart", "t", "--from-step", "boat", "-m", mod]) == 1
    assert "no step 'boat'" in capsys.readouterr().err
    with open_runtime(path) as rt:  # recovery runs the fork
        outcome = rt.run("t~1").result(WAIT)
        assert outcome.ok
        assert outcome.results["car"] == Booking("car", "t~1", ["flight", "hotel"])
    assert main(["inspect", db, "show", "t~1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["events"][0]["origin"] == "t"
    assert shown["events"][0]["carried"]["hotel"]["saga"] == "t"


@pytest.mark.anyio
async def test_arestart_forks_from_an_event_loop(tmp_path: Path) -> None:
    with open_runtime(tmp_path / "j.db") as rt:
        assert (await (await rt.astart(TRIP, Trip("a"), saga_id="a")).wait(WAIT)).ok
        run = await rt.arestart("a", from_step="pay")
        assert run.id == "a~1"
        outcome = await run.wait(WAIT)
        assert outcome.results["pay"] == Booking("pay", "a~1", ["car", "flight", "hotel"])
        with pytest.raises(sa.OperationRefused):
            await rt.arestart("a", from_step="boat")
