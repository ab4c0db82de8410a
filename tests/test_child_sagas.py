"""Child sagas: a ``sa.Child`` step runs a saga of its own, and its outcome is the child's.

The trip of ``tests/nested.py`` books its flight through the child saga ``flight`` (a seat,
then a ticket). What must hold, in both modes: the child's id is ``<parent>/<step>``; its
input is built from the parent's input and earlier results; its result is the step's result,
typed, for later steps; compensating the step undoes the child's steps in reverse, whether the
child completed or was still running (in doubt); a failing child fails its step; the parent's
history shows the child's timeline nested; wrong definitions are refused with clear errors;
and a crash anywhere, then recovery, applies every effect once and never starts a child twice.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.testing import crash_and_recover, crash_cases

from .chain import MODES
from .nested import FLIGHT, TRIP, Book, FlightOrder, Ticket, Trip, desks, flight_order

DONE, UNDONE = sa.SagaStatus.COMPLETED, sa.SagaStatus.COMPENSATED


def _books(rt: sa.Runtime) -> dict[str, Book]:
    return {name: rt.state(name) for name in ("wallet", "airline", "hotel")}


def _check(rt: sa.Runtime, trip: Trip, saga_id: str) -> list[str]:
    """What is wrong with one trip's effects (empty when all is right): each effect applied
    at most once, and what stands at the end is what its outcome says."""
    outcome = rt.run(saga_id).result(10)
    child = rt.run(f"{saga_id}/flight").result(10)
    books = _books(rt)
    keys = {
        "hold": ("wallet", f"{saga_id}/hold"),
        "seat": ("airline", f"{saga_id}/flight/seat"),
        "ticket": ("airline", f"{saga_id}/flight/ticket"),
        "room": ("hotel", f"{saga_id}/room"),
        "invoice": ("wallet", f"{saga_id}/invoice"),
    }
    problems = [
        f"{step} applied {books[desk].did[key]} times"
        for step, (desk, key) in keys.items()
        if books[desk].did.get(key, 0) > 1 or books[desk].undid.get(key, 0) > 1
    ]
    standing = {step for step, (desk, key) in keys.items() if books[desk].net(key) > 0}
    want: tuple[sa.SagaStatus, sa.SagaStatus, set[str]] = (
        (UNDONE, UNDONE, set()) if trip.refuse else (DONE, DONE, set(keys))
    )
    got = (outcome.status, child.status, standing)
    if got != want:
        problems.append(f"{saga_id}: {got} != {want} ({outcome.reason}; child {child.reason})")
    return problems


@pytest.mark.parametrize("mode", MODES)
def test_a_child_runs_under_a_derived_id_and_its_result_flows_on(mode: sa.Mode) -> None:
    with sa.Runtime.in_memory(participants=desks(), sagas=[TRIP]) as rt:
        outcome = rt.start(TRIP, Trip("a"), saga_id="t-a", mode=mode).result(5)
        child = rt.run("t-a/flight").result(5)
        books = _books(rt)
        assert _check(rt, Trip("a"), "t-a") == []
    assert outcome.status is DONE
    assert outcome.results["flight"] == Ticket("tkt-a", "hold-a")  # typed: the child's ticket
    assert child.status is DONE
    assert child.saga == "flight"
    # The child's input came from the parent's input and the hold's result; the invoice read
    # the child's result, typed.
    assert books["airline"].notes["t-a/flight/seat"] == "hold-a"
    assert books["wallet"].notes["t-a/invoice"] == "tkt-a True"


@pytest.mark.parametrize("mode", MODES)
def test_a_later_failure_undoes_the_completed_child_in_reverse(mode: sa.Mode) -> None:
    with sa.Runtime.in_memory(participants=desks(), sagas=[TRIP]) as rt:
        outcome = rt.start(TRIP, Trip("b", refuse="room"), saga_id="t-b", mode=mode).result(5)
        child = rt.run("t-b/flight").result(5)
        airline = rt.state("airline")
        assert _check(rt, Trip("b", refuse="room"), "t-b") == []
    assert outcome.status is UNDONE
    assert outcome.compensated == ("flight", "hold")
    assert child.status is UNDONE
    assert "compensated by its parent 't-b'" in child.reason
    assert child.compensated == ("ticket", "seat")
    assert airline.order == [
        "t-b/flight/seat",
        "t-b/flight/ticket",
        "-t-b/flight/ticket",
        "-t-b/flight/seat",
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_child_fails_its_step_and_the_parent_compensates(mode: sa.Mode) -> None:
    trip = Trip("c", refuse="ticket")
    with sa.Runtime.in_memory(participants=desks(), sagas=[TRIP]) as rt:
        outcome = rt.start(TRIP, trip, saga_id="t-c", mode=mode).result(5)
        child = rt.run("t-c/flight").result(5)
        assert _check(rt, trip, "t-c") == []
        hotel = rt.state("hotel")
    assert outcome.status is UNDONE
    assert "step 'flight' failed" in outcome.reason
    assert "airline refuses" in outcome.reason
    assert outcome.compensated == ("hold",)  # the child undid itself already
    assert child.status is UNDONE
    assert child.compensated == ("seat",)
    assert hotel.did == {}


def _started(rt: sa.Runtime, saga_id: str, step: str) -> bool:
    try:
        entries = rt.history(saga_id)
    except sa.UnknownSaga:
        return False
    return any(e.type == "StepStarted" and e.event.step == step for e in entries)


@pytest.mark.parametrize("mode", MODES)
def test_cancelling_the_parent_while_the_child_runs_undoes_the_child(mode: sa.Mode) -> None:
    """The child is in doubt (its ticket handler is running): it is cancelled, and its steps
    (the running one included) are compensated before the parent's hold is released."""
    trip = Trip("d", slow="ticket")
    with sa.Runtime.in_memory(participants=desks(), sagas=[TRIP]) as rt:
        run = rt.start(TRIP, trip, saga_id="t-d", mode=mode)
        deadline = time.monotonic() + 5
        while not _started(rt, "t-d/flight", "ticket"):  # (the airline is busy: ask the journal)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        rt.cancel("t-d", "changed plans")
        outcome = run.result(5)
        child = rt.run("t-d/flight").result(5)
        books = _books(rt)
    assert outcome.status is UNDONE
    assert outcome.reason == "changed plans"
    assert outcome.compensated == ("flight", "hold")
    assert child.status is UNDONE
    assert books["airline"].net("t-d/flight/seat") == 0
    assert books["airline"].net("t-d/flight/ticket") == 0
    assert books["wallet"].net("t-d/hold") == 0
    assert books["hotel"].did == {}


@pytest.mark.parametrize("mode", MODES)
def test_the_parents_history_shows_the_childs_timeline_nested(mode: sa.Mode) -> None:
    with sa.Runtime.in_memory(participants=desks(), sagas=[TRIP]) as rt:
        rt.start(TRIP, Trip("h", refuse="room"), saga_id="t-h", mode=mode).result(5)
        entries = rt.history("t-h")
        own = rt.history("t-h/flight")
    whose = [e.saga_id for e in entries]
    first, last = whose.index("t-h/flight"), len(whose) - whose[::-1].index("t-h/flight")
    assert {e.saga_id for e in entries} == {"t-h", "t-h/flight"}
    child_types = [e.type for e in entries[first:last] if e.source == "coordinator"]
    assert child_types[0] == "SagaStarted"
    assert "ChildDone" in child_types
    assert child_types[-1] == "SagaCompensated"
    # The child's entries sit between the parent's start of the step and its compensation.
    flight = [e for e in entries if e.saga_id == "t-h" and getattr(e.event, "step", "") == "flight"]
    assert [e.type for e in flight] == [
        "StepStarted",
        "StepSucceeded",
        "CompensationStarted",
        "StepCompensated",
    ]
    assert flight[0].position < entries[first].position
    assert entries[last - 1].position < flight[-1].position
    assert flight[1].event.result == Ticket("tkt-h", "hold-h")  # typed in the history too
    # The child's own history is its part of the parent's.
    assert [e.position for e in own] == [e.position for e in entries if e.saga_id == "t-h/flight"]
    assert {e.to_builtins()["saga_id"] for e in own} == {"t-h/flight"}


@pytest.mark.parametrize("mode", MODES)
def test_a_child_named_by_a_registered_saga_and_another_result_step(mode: sa.Mode) -> None:
    saga = sa.Saga(
        "seat-only",
        [
            sa.Step("hold", "wallet", "hold"),
            sa.Child("flight", "flight", input=flight_order, result="seat"),
        ],
        input_type=Trip,
    )
    with sa.Runtime.in_memory(participants=desks(), sagas=[FLIGHT, saga]) as rt:
        outcome = rt.start(saga, Trip("n"), saga_id="n", mode=mode).result(5)
    assert outcome.status is DONE
    assert outcome.results["flight"] == "seat-n"


@pytest.mark.parametrize("mode", MODES)
def test_a_child_in_a_parallel_group_is_undone_when_a_sibling_fails(mode: sa.Mode) -> None:
    saga = sa.Saga(
        "fan",
        [
            sa.Step("hold", "wallet", "hold"),
            sa.Parallel(
                [sa.Child("flight", FLIGHT, input=flight_order), sa.Step("room", "hotel", "room")]
            ),
        ],
        input_type=Trip,
    )
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga]) as rt:
        outcome = rt.start(saga, Trip("p", refuse="room"), saga_id="p", mode=mode).result(5)
        child = rt.run("p/flight").result(5)
        airline = rt.state("airline")
    assert outcome.status is UNDONE
    assert child.status is UNDONE
    assert airline.net("p/flight/seat") == airline.net("p/flight/ticket") == 0


def test_a_grandchild_nests_too() -> None:
    middle = sa.Saga("booking", [sa.Child("flight", FLIGHT)], input_type=FlightOrder)
    top = sa.Saga(
        "agency",
        [
            sa.Step("hold", "wallet", "hold"),
            sa.Child("booking", middle, input=flight_order),
            sa.Step("room", "hotel", "room"),
        ],
        input_type=Trip,
    )
    with sa.Runtime.in_memory(participants=desks(), sagas=[top]) as rt:
        outcome = rt.start(top, Trip("g", refuse="room"), saga_id="g").result(5)
        inner = rt.run("g/booking/flight").result(5)
        airline = rt.state("airline")
        whose = {e.saga_id for e in rt.history("g")}
    assert outcome.status is UNDONE
    assert inner.status is UNDONE
    assert airline.order[-2:] == ["-g/booking/flight/ticket", "-g/booking/flight/seat"]
    assert whose == {"g", "g/booking", "g/booking/flight"}


def test_a_held_child_says_so_and_is_cancelled_only_through_its_parent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Done, the child waits for its parent; a cancel of the child itself is dropped (it would
    undo work its parent counts on), and the parent's completion completes it."""
    saga = sa.Saga(
        "waiting",
        [
            sa.Step("hold", "wallet", "hold"),
            sa.Child("flight", FLIGHT, input=flight_order),
            sa.WaitFor("go"),
        ],
        input_type=Trip,
    )
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga]) as rt:
        run = rt.start(saga, Trip("w"), saga_id="w")
        deadline = time.monotonic() + 5
        while not _started(rt, "w", "go"):  # the parent waits: its child is done
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert rt.status("w/flight").reason == "done; held until its parent 'w' ends"
        rt.cancel("w/flight")
        time.sleep(0.1)
        assert rt.status("w/flight").status is sa.SagaStatus.RUNNING
        assert "cancel the parent instead" in caplog.text
        rt.signal("w", "go", None)
        assert run.result(5).status is DONE
        assert rt.run("w/flight").result(5).status is DONE
        assert rt.state("airline").net("w/flight/ticket") == 1


# -- wrong definitions and ids -------------------------------------------------------------------


def test_a_child_named_but_not_registered_is_refused() -> None:
    saga = sa.Saga("trip2", [sa.Child("flight", "no-such-saga")])
    with sa.Runtime.in_memory(participants=desks()) as rt, pytest.raises(sa.UnknownChildSaga) as e:
        rt.define(saga)
    assert e.value.child == "no-such-saga"
    assert e.value.step == "flight"
    assert isinstance(e.value, sa.DefinitionError)


def test_children_that_lead_back_to_their_parent_are_refused() -> None:
    first = sa.Saga("outbound", [sa.Step("seat", "airline", "seat")], input_type=FlightOrder)
    back = sa.Saga("inbound", [sa.Child("again", "outbound")], input_type=FlightOrder)
    cycle = sa.Saga("outbound", [sa.Child("back", "inbound")], version=2)
    with sa.Runtime.in_memory(participants=desks(), sagas=[first, back]) as rt:
        with pytest.raises(sa.ChildSagaCycle) as e:
            rt.define(cycle)
        assert e.value.path == ["outbound", "inbound", "outbound"]
        assert "outbound -> inbound -> outbound" in str(e.value)
        with pytest.raises(sa.ChildSagaCycle):
            rt.define(sa.Saga("selfish", [sa.Child("me", "selfish")], version=1))
        rt.define(sa.Saga("selfish", [sa.Step("seat", "airline", "seat")]))
        with pytest.raises(sa.ChildSagaCycle):
            rt.define(sa.Saga("selfish", [sa.Child("me", "selfish")], version=2))


def test_wrong_child_steps_are_refused_when_written() -> None:
    with pytest.raises(sa.DefinitionError, match="cannot contain '/'"):
        sa.Child("a/b", FLIGHT)
    with pytest.raises(sa.DefinitionError, match="has no step 'nope'"):
        sa.Child("flight", FLIGHT, result="nope")
    pivoted = sa.Saga(
        "pivoted",
        [
            sa.Step("seat", "airline", "seat", pivot=True),
            sa.Step("ticket", "airline", "ticket", retriable=True),
        ],
    )
    with pytest.raises(sa.DefinitionError, match="run it as the pivot"):
        sa.Child("flight", pivoted)
    assert sa.Child("flight", pivoted, pivot=True).pivot


def test_a_child_id_cannot_be_taken_by_a_caller() -> None:
    """A caller's id cannot contain '/', so no saga started by hand takes a child's id."""
    with (
        sa.Runtime.in_memory(participants=desks(), sagas=[TRIP]) as rt,
        pytest.raises(sa.DefinitionError, match="without '/'"),
    ):
        rt.start(FLIGHT, FlightOrder("x", "h"), saga_id="t-x/flight")


@pytest.mark.parametrize("mode", MODES)
def test_a_child_input_that_cannot_be_built_fails_the_step(mode: sa.Mode) -> None:
    def broken(given: sa.ChildInput) -> FlightOrder:
        raise KeyError("no hold")

    saga = sa.Saga(
        "broken",
        [sa.Step("hold", "wallet", "hold"), sa.Child("flight", FLIGHT, input=broken)],
        input_type=Trip,
    )
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga]) as rt:
        outcome = rt.start(saga, Trip("k"), saga_id="k", mode=mode).result(5)
        assert "k/flight" not in rt.saga_ids()
    assert outcome.status is UNDONE
    assert "the child saga's input: KeyError" in outcome.reason


# -- durable: a crash anywhere ---------------------------------------------------------------------

TRIPS = (Trip("ok"), Trip("late", refuse="room"), Trip("early", refuse="ticket"))


def _workload(rt: sa.Runtime, mode: sa.Mode) -> list[tuple[str, Trip]]:
    started = []
    for trip in TRIPS:
        try:
            rt.start(TRIP, trip, saga_id=f"s-{trip.id}", mode=mode)
        except sa.RuntimeCrashed:
            break
        started.append((f"s-{trip.id}", trip))
    return started


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
def test_a_crash_anywhere_applies_each_effect_once(
    kind: str, mode: sa.Mode, tmp_path: Path
) -> None:
    """Crash at every pass of every point, recover: every child ends as its parent says, no
    effect of parent or child applied twice, and each child started once (one stream)."""
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY]
    if mode == "choreography":
        points.append(sa.CrashPoint.BEFORE_DISPATCH)

    def runtime(journal: MemoryJournal | SqliteJournal) -> sa.Runtime:
        return sa.Runtime(journal, participants=desks(), sagas=[TRIP])

    workload = functools.partial(_workload, mode=mode)
    cases = crash_cases(lambda: runtime(MemoryJournal()), workload, points)
    assert len(cases) > 20
    for number, case in enumerate(cases):
        memory = MemoryJournal()
        path = tmp_path / f"j{number}.db"

        def reopen(memory: MemoryJournal = memory, path: Path = path) -> sa.Runtime:
            return runtime(
                memory if kind == "memory" else SqliteJournal(path, synchronous="normal")
            )

        started, rt = crash_and_recover(reopen, workload, case)
        trips = {f"s-{trip.id}": trip for trip in TRIPS}
        with rt:
            ids = rt.saga_ids()  # the acknowledged ones, and any whose start was journaled
            tops = [i for i in ids if "/" not in i]
            problems = [p for saga_id in tops for p in _check(rt, trips[saga_id], saga_id)]
            children = [i for i in ids if "/" in i]
            starts = {
                c: [e.type for e in rt.history(c) if e.saga_id == c].count("SagaStarted")
                for c in children
            }
        assert {saga_id for saga_id, _ in started} <= set(tops), case
        assert problems == [], f"{case}: {problems}"
        assert {c.split("/")[0] for c in children} <= set(tops), f"{case}: {children}"
        assert set(starts.values()) <= {1}, f"{case}: {starts}"
