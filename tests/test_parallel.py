"""Parallel groups: ``sa.Parallel([...])`` runs its members at once and joins, in both modes.

With the trip of ``tests/trip.py`` (hold, then flight | hotel | car, then invoice): the members'
commands go out together and their handlers overlap; the invoice reads all three results; a
refused member stops the saga, the siblings in flight are awaited, and the completed members
are compensated before the earlier steps; a member that times out is in doubt and compensated;
a cancel in the middle of a group compensates every member; many grouped sagas run at once; a
restart in the middle of a group finishes it with every effect applied once. Bad definitions
are refused with a ``DefinitionError`` naming the problem.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import StepCompensated, StepStarted, StepSucceeded

from .chain import MODES
from .trip import MEMBERS, Booking, Invoice, Trip, desks, net, problems, trip_saga

WAIT = 10.0


def _types(rt: sa.Runtime, saga_id: str) -> list[tuple[str, str]]:
    return [
        (entry.type, getattr(entry.event, "step", ""))
        for entry in rt.history(saga_id)
        if entry.source == "coordinator"
    ]


@pytest.mark.parametrize("mode", MODES)
def test_members_run_at_once_and_join(mode: sa.Mode) -> None:
    saga = trip_saga()
    slow = dict.fromkeys(MEMBERS, 0.3)
    participants = desks()
    with sa.Runtime.in_memory(participants=participants, sagas=[saga]) as rt:
        outcome = rt.start(saga, Trip("t1", slow=slow), saga_id="t1", mode=mode).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPLETED, outcome.reason
        # Every member's result reaches the invoice, typed.
        assert outcome.results["invoice"] == Invoice(["airline-t1", "hotels-t1", "rentals-t1"])
        assert outcome.results["car"] == Booking("rentals-t1", "rentals")
        # The three commands went out together: no member answered before all were sent,
        # and the invoice was sent only once all three had answered.
        types = _types(rt, "t1")
        started = [types.index(("StepStarted", m)) for m in MEMBERS]
        answered = [types.index(("StepSucceeded", m)) for m in MEMBERS]
        assert max(started) < min(answered), types
        assert types.index(("StepStarted", "invoice")) > max(answered)
        # ... and the handlers overlapped (each sleeps 0.3 s).
        ran = [p.ran[f"t1/{m}"] for p, m in zip(participants[1:4], MEMBERS, strict=True)]  # type: ignore[attr-defined]
        assert max(start for start, _ in ran) < min(end for _, end in ran)
        assert net(rt, "t1") == dict.fromkeys(("hold", *MEMBERS, "invoice"), 1)


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_member_compensates_its_siblings_then_earlier_steps(mode: sa.Mode) -> None:
    saga = trip_saga()
    # The hotel refuses at once, while the flight and the car are still running: the saga
    # waits for them, then undoes both, then the budget hold.
    trip = Trip("t2", refuse="hotel", slow={"flight": 0.3, "car": 0.2})
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga]) as rt:
        outcome = rt.start(saga, trip, saga_id="t2", mode=mode).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "step 'hotel' failed: hotels refuses t2"
        # Reverse order of completion: the flight (slowest, so done last) first, then the car,
        # then the hold.
        assert outcome.compensated == ("flight", "car", "hold")
        types = _types(rt, "t2")
        failed = types.index(("StepFailed", "hotel"))
        assert types.index(("StepSucceeded", "car")) > failed
        assert types.index(("StepSucceeded", "flight")) > failed
        first_undo = min(i for i, (t, _) in enumerate(types) if t == "CompensationStarted")
        assert first_undo > types.index(("StepSucceeded", "flight"))  # it waited for both
        assert ("StepStarted", "invoice") not in types
        assert net(rt, "t2") == dict.fromkeys(("hold", *MEMBERS, "invoice"), 0)
        assert problems(rt, "t2") == []


@pytest.mark.parametrize("mode", MODES)
def test_a_member_timing_out_is_in_doubt_and_compensated(mode: sa.Mode) -> None:
    saga = trip_saga(car_timeout=0.15)
    trip = Trip("t3", slow={"car": 0.5})  # the car's handler outlives its timeout
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga]) as rt:
        outcome = rt.start(saga, trip, saga_id="t3", mode=mode).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "step 'car' timed out (attempt 1)"
        # The car is in doubt: undone first (its compensation waits behind its slow action
        # at the participant, or leaves a tombstone), then the members that completed.
        assert outcome.compensated[0] == "car"
        assert set(outcome.compensated[1:3]) == {"flight", "hotel"}
        assert outcome.compensated[3] == "hold"
        assert "car" not in outcome.results
        assert net(rt, "t3") == dict.fromkeys(("hold", *MEMBERS, "invoice"), 0)
        assert problems(rt, "t3") == []


@pytest.mark.parametrize("mode", MODES)
def test_a_cancel_mid_group_compensates_every_member(mode: sa.Mode) -> None:
    saga = trip_saga()
    trip = Trip("t4", slow={"flight": 0.4, "hotel": 0.4, "car": 0.4})
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga]) as rt:
        run = rt.start(saga, trip, saga_id="t4", mode=mode)
        while sum(t == "StepStarted" for t, _ in _types(rt, "t4")) < 4:
            pass  # the group's commands are out
        rt.cancel("t4", "changed my mind")
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "changed my mind"
        # Every member was running: all in doubt, undone in reverse definition order.
        assert outcome.compensated == ("car", "hotel", "flight", "hold")
        assert net(rt, "t4") == dict.fromkeys(("hold", *MEMBERS, "invoice"), 0)
        assert problems(rt, "t4") == []


@pytest.mark.parametrize("mode", MODES)
def test_fifty_grouped_sagas_at_once(mode: sa.Mode, tmp_path: Path) -> None:
    saga = trip_saga()
    refusals = ["", "hold", "flight", "hotel", "car", "invoice"]
    trips = [Trip(f"m{i}", refuse=refusals[i % len(refusals)]) for i in range(50)]
    with sa.Runtime.open(tmp_path / "trips.db", participants=desks(), sagas=[saga]) as rt:
        runs = [rt.start(saga, trip, saga_id=trip.id, mode=mode) for trip in trips]
        for trip, run in zip(trips, runs, strict=True):
            outcome = run.result(WAIT)
            standing = net(rt, trip.id)
            assert problems(rt, trip.id) == []
            if not trip.refuse:
                assert outcome.status is sa.SagaStatus.COMPLETED, outcome.reason
                assert set(standing.values()) == {1}
            else:
                assert outcome.status is sa.SagaStatus.COMPENSATED, outcome.reason
                assert set(standing.values()) == {0}, (trip, standing)
                undone = list(outcome.compensated)
                if trip.refuse in MEMBERS:
                    siblings = {m for m in MEMBERS if m != trip.refuse}
                    assert set(undone[:2]) == siblings
                    assert undone[2:] == ["hold"]
                if trip.refuse == "invoice":
                    assert set(undone[:3]) == set(MEMBERS)
                    assert undone[3:] == ["hold"]


@pytest.mark.parametrize("mode", MODES)
def test_a_restart_mid_group_finishes_it_once(mode: sa.Mode, tmp_path: Path) -> None:
    """The runtime dies after the first member's success is journaled (its 2nd commit); a
    new runtime over the same file re-sends the members still in flight and joins."""
    saga = trip_saga()
    path = tmp_path / "trip.db"
    trip = Trip("t5", slow={"hotel": 0.2, "car": 0.3})
    with sa.Runtime.open(path, participants=desks(), sagas=[saga]) as rt:
        rt.arm(sa.CrashPoint.AFTER_COMMIT, 2)
        rt.start(saga, trip, saga_id="t5", mode=mode)
        with pytest.raises(sa.RuntimeCrashed):
            rt.run("t5").result(WAIT)
        journaled = [t for t, _ in _types(rt, "t5")] if not rt.crashed else None
    assert journaled is None
    with sa.Runtime.open(path, participants=desks(), sagas=[saga]) as rt:
        outcome = rt.run("t5").result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPLETED, outcome.reason
        assert net(rt, "t5") == dict.fromkeys(("hold", *MEMBERS, "invoice"), 1)
        assert problems(rt, "t5") == []
        history = rt.history("t5")
        succeeded = [e.event.step for e in history if isinstance(e.event, StepSucceeded)]
        assert sorted(succeeded) == sorted(["hold", *MEMBERS, "invoice"])  # each once
        # Each member was started once: the recovery re-sent the same commands.
        started = [e.event.step for e in history if isinstance(e.event, StepStarted)]
        assert sorted(started) == sorted(["hold", *MEMBERS, "invoice"])


def test_a_group_after_the_pivot_is_retried_until_it_succeeds() -> None:
    fast = sa.RetryPolicy(backoff=0.005, max_backoff=0.02)
    saga = sa.Saga(
        "after-pivot",
        [
            sa.Step("hold", "budget", "book", pivot=True),
            sa.Parallel(
                [
                    sa.Step("flight", "airline", "book", retriable=True, retry=fast),
                    sa.Step("hotel", "hotels", "book", retriable=True, retry=fast),
                ]
            ),
        ],
        input_type=Trip,
    )
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga], recover=False) as rt:
        rt.inject("hotels", "book", sa.Fault("fail", times=3))
        outcome = rt.start(saga, Trip("t6"), saga_id="t6").result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPLETED
        retried = [e for e in rt.history("t6") if e.type == "StepRetrying"]
        assert [e.event.step for e in retried] == ["hotel"] * 3
        assert not any(isinstance(e.event, StepCompensated) for e in rt.history("t6"))


# -- bad definitions --------------------------------------------------------------------------


def _step(name: str, **options: object) -> sa.Step:
    return sa.Step(name, "p", "do", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda: sa.Parallel([]), "needs at least one step"),
        (lambda: sa.Parallel([sa.Parallel([_step("a")])]), "a group inside a group"),  # type: ignore[list-item]
        (lambda: sa.Parallel([_step("a"), "b"]), "not a Step"),  # type: ignore[list-item]
        (lambda: sa.Parallel([_step("a", pivot=True)]), "a pivot cannot run in a parallel"),
        (
            lambda: sa.Saga("s", [sa.Parallel([_step("a"), _step("a")])]),
            "duplicate step name",
        ),
        (
            lambda: sa.Saga("s", [_step("a"), sa.Parallel([_step("b"), _step("a")])]),
            "duplicate step name",
        ),
        (
            lambda: sa.Saga(
                "s", [sa.Parallel([_step("a", compensable=False), _step("b")]), _step("c")]
            ),
            "cannot be compensated may run in a parallel group only when the group is the",
        ),
        (
            lambda: sa.Saga("s", [sa.Parallel([_step("a", retriable=True), _step("b")])]),
            "a retriable step must come after the pivot",
        ),
        (
            lambda: sa.Saga(
                "s", [_step("a", pivot=True), sa.Parallel([_step("b", retriable=True), _step("c")])]
            ),
            "comes after the pivot 'a'",
        ),
    ],
)
def test_bad_groups_are_refused(build: object, problem: str) -> None:
    with pytest.raises(sa.DefinitionError, match=problem):
        build()  # type: ignore[operator]


def test_good_groups_read_back() -> None:
    last = sa.Saga("s", [_step("a"), sa.Parallel([_step("b"), _step("c", compensable=False)])])
    assert [s.name for s in last.steps] == ["a", "b", "c"]
    assert [[s.name for s in stage] for stage in last.stages] == [["a"], ["b", "c"]]
    assert [s.group for s in last.steps] == [0, 1, 1]
    assert last.before("c") == ("a",)  # a sibling is not before it

    again = dataclasses.replace(last, version=2)
    assert again.stages == last.stages
    assert again.version == 2


# -- the playground draws a group -------------------------------------------------------------


def test_graph_and_mermaid_draw_the_fork_and_the_join() -> None:
    from sagactor.playground.mermaid import flowchart
    from sagactor.playground.render.graphs import graph

    saga = trip_saga()
    text = graph(saga)
    assert "+-- group 1: at once; the saga goes on when all succeeded" in text
    assert "+-- join group 1" in text
    assert "| 3. hotel" in text
    assert "undo flight, car (done or in doubt), then undo 1. hold" in text
    assert "5. invoice  accounts.invoice  --fails-->  undo group 1 (flight, hotel, car)" in text
    chart = flowchart(saga).splitlines()
    for edge in (
        "    s1 -->|ok| fork1",
        "    fork1 --> s2",
        "    fork1 --> s4",
        "    s3 -->|ok| join1",
        "    join1 -->|ok| s5",
        "    s3 -.->|fails| u1",
        "    s5 -.->|fails| u1",
        "    u1 --> c1",
    ):
        assert edge in chart, edge


def test_the_timeline_shows_members_interleaved() -> None:
    from sagactor.playground.render.timelines import timeline

    saga = trip_saga()
    with sa.Runtime.in_memory(participants=desks(), sagas=[saga]) as rt:
        rt.start(saga, Trip("t7", slow={"car": 0.1}), saga_id="t7").result(WAIT)
        text = timeline("t7", rt.history("t7"), saga)
    assert "car -> rentals.book (attempt 1) (group 1, at once with flight, hotel)" in text
    rows = [line.split()[:2] for line in text.splitlines() if line.strip()[:2] in ("2a", "2c")]
    assert rows == [["2a", "flight"], ["2c", "car"]]
    # The car (slow) answers after its siblings' successes: interleaved, not one by one.
    lines = text.splitlines()
    sent = [i for i, line in enumerate(lines) if "run step" in line and "group 1" in line]
    oks = [i for i, line in enumerate(lines) if "step ok" in line and "=>" in line]
    assert len(sent) == 3
    assert max(sent) < min(o for o in oks if o > sent[0])


# -- the pure machine -------------------------------------------------------------------------


def test_the_machine_drains_a_failed_group_and_stacks_in_doubt_members() -> None:
    """Driven by hand: flight answers an error (retry due), hotel refuses; the flight is then
    in doubt (not retried), the car in flight is awaited, and once it answers the stack
    undoes the flight (in doubt) first, then the car, then the hold."""
    from sagactor.actor_messages import Reply, Wake
    from sagactor.sagas.effects import Send
    from sagactor.sagas.machine import decide, follow_up, start

    saga = trip_saga(retry=sa.RetryPolicy(max_attempts=3, backoff=1.0))
    state, _ = start(saga, "x", "orchestration", Trip("x"), b"", "", now=0.0)
    ok = msgspec.Raw(msgspec.msgpack.encode(None))
    events = decide(state, Reply("x", "hold", "action", 1, "ok", raw=ok), 1.0)
    assert [type(e).__name__ for e in events] == ["StepSucceeded", *["StepStarted"] * 3]
    assert [e.step for e in follow_up(state, events) if isinstance(e, Send)] == list(MEMBERS)
    flight_error = Reply("x", "flight", "action", 1, "error", reason="busy", retryable=True)
    events = decide(state, flight_error, 2.0)
    assert [type(e).__name__ for e in events] == ["StepRetrying"]
    assert follow_up(state, events)[0].due == 3.0  # type: ignore[union-attr]
    events = decide(state, Reply("x", "hotel", "action", 1, "failed", reason="full"), 2.5)
    assert [type(e).__name__ for e in events] == ["StepAbandoned"]
    assert follow_up(state, events) == []  # the car is in flight: nothing is sent again
    assert state.draining
    assert decide(state, Wake("x", "flight", "action", 1), 3.0) == []  # not retried
    events = decide(state, Reply("x", "car", "action", 1, "ok", raw=ok), 4.0)
    assert [type(e).__name__ for e in events] == ["StepSucceeded", "CompensationStarted"]
    assert state.stack == ["hold", "car", "flight"]
    assert state.reason == "step 'hotel' failed: full"
