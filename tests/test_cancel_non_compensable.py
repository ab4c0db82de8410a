"""Cancelling (or giving up on) a saga while a step that cannot be undone is in flight.

A non-compensable step (an e-mail) has nothing to undo, so compensating around it would let it
run after the saga was compensated: the e-mail goes out for a cancelled trip. Instead the saga
*fences* it before compensating the earlier steps: the participant handles every copy of the
command sent before the fence (waiting for one that is running), records the fence in its
inbox so that any later copy is refused, and answers what it found. The saga records it
(``StepFenced``) and says it in its reason: the step completed, failed, or was refused before
it ran. The same holds in both modes, when the step timed out, and across a restart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import Handled, StepFenced
from sagactor.persistence.memory import MemoryJournal

MODES: tuple[sa.Mode, ...] = ("orchestration", "choreography")
WAIT = 20.0


class Trip(msgspec.Struct, frozen=True):
    id: str
    hold: bool = False  # the e-mail handler waits until the test releases it ...
    refuse: bool = False  # ... then refuses (StepFailed)
    seconds: float = 0.0  # or it takes this long


class Booked(msgspec.Struct, frozen=True):
    key: str


class Unbooked(msgspec.Struct, frozen=True):
    key: str


class Sent(msgspec.Struct, frozen=True):
    key: str


class Counts(msgspec.Struct):
    booked: dict[str, int] = {}
    unbooked: dict[str, int] = {}
    sent: dict[str, int] = {}


class Trips(sa.Participant[Counts]):
    name = "trips"

    def initial_state(self) -> Counts:
        return Counts()

    @sa.action("book")
    def book(self, ctx: sa.StepContext, trip: Trip) -> str:
        ctx.record(Booked(ctx.idempotency_key))
        return "booked"

    @sa.compensation("book")
    def unbook(self, ctx: sa.StepContext, trip: Trip, done: str) -> None:
        ctx.record(Unbooked(ctx.idempotency_key))

    @sa.evolve
    def _booked(self, state: Counts, change: Booked) -> None:
        state.booked[change.key] = state.booked.get(change.key, 0) + 1

    @sa.evolve
    def _unbooked(self, state: Counts, change: Unbooked) -> None:
        state.unbooked[change.key] = state.unbooked.get(change.key, 0) + 1


class Mailer(sa.Participant[Counts]):
    """Sends the confirmation e-mail: nothing can take it back (no compensation)."""

    name = "mailer"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: Counter[str] = Counter()

    def initial_state(self) -> Counts:
        return Counts()

    @sa.action("send")
    def send(self, ctx: sa.StepContext, trip: Trip) -> str:
        self.calls[ctx.idempotency_key] += 1
        if trip.hold:
            self.entered.set()
            self.release.wait(WAIT)
        time.sleep(trip.seconds)
        if trip.refuse:
            raise sa.StepFailed("mailbox full")
        ctx.record(Sent(ctx.idempotency_key))
        return "sent"

    @sa.evolve
    def _sent(self, state: Counts, change: Sent) -> None:
        state.sent[change.key] = state.sent.get(change.key, 0) + 1


def trip_saga(**notify: object) -> sa.Saga:
    return sa.Saga(
        "trip",
        [
            sa.Step("book", participant="trips", action="book"),
            sa.Step("notify", participant="mailer", action="send", compensable=False, **notify),  # type: ignore[arg-type]
        ],
        input_type=Trip,
    )


@pytest.fixture
def mailer() -> Iterator[Mailer]:
    mailer = Mailer()
    yield mailer
    mailer.release.set()  # never leave a handler waiting


def positions(rt: sa.Runtime, saga_id: str) -> dict[str, int]:
    """Where (journal position) each kind of entry of the saga's history first appears."""
    found: dict[str, int] = {}
    for entry in rt.history(saga_id):
        name = entry.type
        if isinstance(entry.event, Handled):
            name = f"Handled {entry.event.step}/{entry.event.kind}"
        found.setdefault(name, entry.position)
    return found


def fences(rt: sa.Runtime, saga_id: str) -> list[tuple[str, str]]:
    return [
        (e.event.step, e.event.outcome)
        for e in rt.history(saga_id)
        if isinstance(e.event, StepFenced)
    ]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("refuse", "found", "sent"), [(False, "completed", 1), (True, "failed", 0)]
)
@pytest.mark.parametrize("mode", MODES)
def test_cancel_waits_for_a_running_non_compensable_step(
    mode: sa.Mode, refuse: bool, found: str, sent: int, mailer: Mailer
) -> None:
    trip = Trip("t1", hold=True, refuse=refuse)
    with sa.Runtime.in_memory(participants=[Trips(), mailer]) as rt:
        run = rt.start(trip_saga(), trip, saga_id=trip.id, mode=mode)
        assert mailer.entered.wait(WAIT)  # the e-mail is being sent
        rt.cancel(trip.id, "customer cancelled")
        compensating = sa.SagaStatus.COMPENSATING
        wait_for(lambda: rt.status(trip.id).status is compensating, "the cancel")
        time.sleep(0.1)  # the saga waits for the step: it compensates nothing meanwhile
        assert rt.status(trip.id).status is compensating
        assert rt.state("trips").unbooked == {}
        mailer.release.set()
        outcome = run.result(WAIT)

        assert outcome.status is sa.SagaStatus.COMPENSATED
        verb = {"completed": "completed", "failed": "failed"}[found]
        assert outcome.reason == f"customer cancelled ('notify' was in flight: it {verb})"
        assert outcome.compensated == ("book",)
        assert fences(rt, trip.id) == [("notify", found)]
        assert rt.state("mailer").sent == ({"t1/notify": 1} if sent else {})
        assert mailer.calls == {"t1/notify": 1}
        assert rt.state("trips").booked == rt.state("trips").unbooked == {"t1/book": 1}
        # The e-mail step was settled before anything was compensated.
        at = positions(rt, trip.id)
        assert at["Handled notify/action"] < at["StepFenced"] < at["Unbooked"]
        assert at["Unbooked"] < at["SagaCompensated"]


@pytest.mark.parametrize("mode", MODES)
def test_cancel_before_a_delayed_non_compensable_step_runs_refuses_it(
    mode: sa.Mode, mailer: Mailer
) -> None:
    trip = Trip("t2")
    with sa.Runtime.in_memory(participants=[Trips(), mailer]) as rt:
        rt.inject("mailer", "send", sa.Fault("delay", seconds=0.5, times=1))
        run = rt.start(trip_saga(), trip, saga_id=trip.id, mode=mode)
        started = lambda: [e.type for e in rt.history(trip.id)].count("StepStarted") == 2  # noqa: E731
        wait_for(started, "the e-mail's command")
        rt.cancel(trip.id, "customer cancelled")
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "customer cancelled ('notify' was in flight: it was refused)"
        assert fences(rt, trip.id) == [("notify", "refused")]

        time.sleep(0.7)  # the delayed command reaches the mailer now: it is refused
        assert mailer.calls == {}
        assert rt.state("mailer").sent == {}
        assert rt.state("trips").booked == rt.state("trips").unbooked == {"t2/book": 1}


@pytest.mark.parametrize("mode", MODES)
def test_a_timed_out_non_compensable_step_is_fenced_too(mode: sa.Mode, mailer: Mailer) -> None:
    """The e-mail takes 0.4 s under a 0.1 s timeout (one attempt): in doubt. The fence waits
    for it and reports that it went out."""
    trip = Trip("t3", seconds=0.4)
    with sa.Runtime.in_memory(participants=[Trips(), mailer]) as rt:
        outcome = rt.start(trip_saga(timeout=0.1), trip, saga_id=trip.id, mode=mode).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == (
            "step 'notify' timed out (attempt 1) ('notify' was in flight: it completed)"
        )
        assert fences(rt, trip.id) == [("notify", "completed")]
        assert rt.state("mailer").sent == {"t3/notify": 1}
        assert rt.state("trips").booked == rt.state("trips").unbooked == {"t3/book": 1}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
def test_a_fence_answer_survives_a_restart(
    mode: sa.Mode, kind: str, tmp_path: Path, mailer: Mailer
) -> None:
    """Die after the fence is recorded but before it is answered: the recovered saga re-sends
    it, the inbox answers the same, and the saga ends as it would have."""
    trip = Trip("t4", hold=True)
    definition = trip_saga()
    memory = MemoryJournal()

    def open_runtime(mailer: Mailer) -> sa.Runtime:
        participants = [Trips(), mailer]
        if kind == "memory":
            return sa.Runtime.in_memory(
                journal=memory, participants=participants, sagas=[definition]
            )
        return sa.Runtime.open(tmp_path / "j.db", participants=participants, sagas=[definition])

    with open_runtime(mailer) as rt:
        rt.start(definition, trip, saga_id=trip.id, mode=mode)
        assert mailer.entered.wait(WAIT)
        rt.cancel(trip.id, "customer cancelled")
        compensating = sa.SagaStatus.COMPENSATING
        wait_for(lambda: rt.status(trip.id).status is compensating, "the cancel")
        rt.arm(sa.CrashPoint.BEFORE_REPLY, at_hit=2)  # 1: the e-mail's answer, 2: the fence's
        mailer.release.set()
        assert rt.wait_until_crashed(WAIT)
    again = Mailer()
    with open_runtime(again) as rt:
        outcome = rt.run(trip.id).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "customer cancelled ('notify' was in flight: it completed)"
        assert fences(rt, trip.id) == [("notify", "completed")]
        assert rt.state("mailer").sent == {"t4/notify": 1}
        assert again.calls == {}
        assert rt.state("trips").booked == rt.state("trips").unbooked == {"t4/book": 1}
