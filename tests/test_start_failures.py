"""A start the runtime cannot carry out fails at once, and only that start.

Why: the caller of ``rt.start`` (``start_many``, ``astart``, a reaction's ``ctx.run_saga``)
waits for the start's acceptance, which the journal's answer gives. When the driver (the
coordinator, or the native dispatcher) raised while handling a start, nobody answered and the
caller waited for ever. The failure met here is one a user can meet: a journal backend of
their own (``Runtime(journal)``) that raises from ``append`` instead of answering through
``on_done``, before it stores anything. What must hold, on memory and SQLite journals: the
start raises promptly (a hang fails the test through its own timeout), with a
:class:`~sagactor.StartFailed` naming the saga and the cause (a ``SagactorError`` the journal
raised passes as it is); sagas started before and after complete; nothing of the failed one
is journaled or kept in memory (its id starts cleanly once the fault is gone); a slot under
``max_in_flight`` is given back; a choreography started again under a refused id cancels
cleanly; a reaction's nested start fails the reaction, not for ever.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.journal import DoneCallback, Journal, Record, Snapshot
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal

from . import test_native_cancel_resume as trips

WAIT = 10.0  # seconds: far above a start's time, far below pytest's own timeout
T = TypeVar("T")


class Item(msgspec.Struct, frozen=True):
    id: str


class Ping(msgspec.Struct, frozen=True):
    id: str


class Pong(msgspec.Struct, frozen=True):
    id: str


class Added(msgspec.Struct, frozen=True):
    key: str


class Removed(msgspec.Struct, frozen=True):
    key: str


class Tally(msgspec.Struct):
    held: dict[str, int] = {}


class Counter(sa.Participant[Tally]):
    """Counts what each saga added (by idempotency key), so a test sees what a saga did."""

    name = "counter"

    def initial_state(self) -> Tally:
        return Tally()

    @sa.action("add")
    def add(self, ctx: sa.StepContext, item: Item) -> str:
        ctx.record(Added(ctx.idempotency_key))
        return ctx.idempotency_key

    @sa.compensation("add")
    def remove(self, ctx: sa.StepContext, item: Item, done: str) -> None:
        ctx.record(Removed(done))

    @sa.evolve
    def _added(self, state: Tally, change: Added) -> None:
        state.held[change.key] = state.held.get(change.key, 0) + 1

    @sa.evolve
    def _removed(self, state: Tally, change: Removed) -> None:
        state.held[change.key] -= 1


class Relay(sa.Participant[list[str]]):
    """Reacts to a Ping by running the orchestrated ``COUNT`` (a hybrid flow), then a Pong."""

    name = "relay"

    def initial_state(self) -> list[str]:
        return []

    @sa.on(Ping, emits=(Pong,))
    def relay(self, ctx: sa.StepContext, ping: Ping) -> None:
        ctx.run_saga(COUNT, Item(ping.id), timeout=WAIT)
        ctx.publish(Pong(ping.id))


COUNT = sa.Saga("count", [sa.Step("add", "counter", "add")], input_type=Item)
LIMITED = sa.Saga("limited", [sa.Step("add", "counter", "add")], input_type=Item, max_in_flight=1)
RELAY = sa.Choreography("relay-flow", start=Ping, completed=(Pong,))


class Refusing(Journal):
    """A journal that raises from ``append`` (as a broken backend would, before storing
    anything) when asked to write for a saga whose id contains ``refused``. Mixed into the
    memory and the SQLite journal below."""

    refused = "bad"
    error: Exception = OSError("the journal's connection dropped")

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        for record in records:
            if record.stream.startswith("saga/") and self.refused in record.stream[5:]:
                raise self.error
        # The journal after this mixin in the MRO (memory, SQLite) implements it.
        super().append(records, on_done, snapshot=snapshot)  # type: ignore[safe-super]


class RefusingMemoryJournal(Refusing, MemoryJournal):
    pass


class RefusingSqliteJournal(Refusing, SqliteJournal):
    pass


@pytest.fixture(params=["memory", "sqlite"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Refusing:
    if request.param == "memory":
        return RefusingMemoryJournal()
    return RefusingSqliteJournal(tmp_path / "journal.db")


@pytest.fixture
def rt(journal: Refusing) -> Iterator[sa.Runtime]:
    with sa.Runtime(
        journal, participants=[Counter(), Relay()], sagas=[COUNT, LIMITED, RELAY]
    ) as rt:
        yield rt


def _promptly(call: Callable[[], T]) -> T:
    """``call()``, which must return or raise within :data:`WAIT` seconds: a start that never
    answers fails the test (``TimeoutError``) instead of hanging it."""
    answer: Future[T] = Future()

    def run() -> None:
        try:
            answer.set_result(call())
        except BaseException as error:  # handed to the test thread as it is
            answer.set_exception(error)

    threading.Thread(target=run, daemon=True).start()
    return answer.result(WAIT)


def _nothing_of(rt: sa.Runtime, saga_id: str) -> None:
    """The saga left no trace: not in the journal, not in the listing, not at the participant."""
    with pytest.raises(sa.UnknownSaga):
        rt.status(saga_id)
    assert saga_id not in {row.id for row in rt.list(limit=1000).rows}
    tally = rt.state("counter")
    assert isinstance(tally, Tally)
    assert not [key for key in tally.held if key.startswith(f"{saga_id}/")]


def _completes(run: sa.SagaRun) -> None:
    outcome = _promptly(lambda: run.result(WAIT))
    assert outcome.status is sa.SagaStatus.COMPLETED, outcome


def test_a_start_that_raises_fails_at_once_and_the_others_go_on(
    rt: sa.Runtime, journal: Refusing
) -> None:
    before = rt.start(COUNT, Item("a"), saga_id="a")
    with pytest.raises(sa.StartFailed, match="'bad-1'") as caught:
        _promptly(lambda: rt.start(COUNT, Item("bad-1"), saga_id="bad-1"))
    assert caught.value.saga_id == "bad-1"
    assert caught.value.saga == "count"
    assert isinstance(caught.value.cause, OSError)
    assert "connection dropped" in str(caught.value)
    after = rt.start(COUNT, Item("b"), saga_id="b")
    _completes(before)
    _completes(after)
    _nothing_of(rt, "bad-1")
    # Nothing half-made stays in memory either: once the fault is gone, the id starts anew.
    journal.refused = "nothing refused"
    _completes(_promptly(lambda: rt.start(COUNT, Item("bad-1"), saga_id="bad-1")))


def test_a_journal_error_raised_at_the_start_reaches_its_caller_as_it_is(
    rt: sa.Runtime, journal: Refusing
) -> None:
    journal.error = sa.JournalWriteError("disk I/O error")
    with pytest.raises(sa.JournalWriteError, match="disk I/O error"):
        _promptly(lambda: rt.start(COUNT, Item("bad-2"), saga_id="bad-2"))
    _nothing_of(rt, "bad-2")
    _completes(rt.start(COUNT, Item("c"), saga_id="c"))


def test_start_many_fails_for_the_refused_start_only(rt: sa.Runtime) -> None:
    ids = ["d1", "bad-3", "d2"]
    with pytest.raises(sa.StartFailed, match="'bad-3'"):
        _promptly(lambda: rt.start_many(COUNT, [Item(i) for i in ids], saga_ids=ids))
    _completes(rt.run("d1"))
    _completes(rt.run("d2"))
    _nothing_of(rt, "bad-3")


def test_a_refused_start_gives_its_max_in_flight_slot_back(rt: sa.Runtime) -> None:
    with pytest.raises(sa.StartFailed):
        _promptly(lambda: rt.start(LIMITED, Item("bad-4"), saga_id="bad-4"))
    for saga_id in ("e1", "e2"):  # each would wait for ever behind a slot never given back
        _completes(_promptly(functools.partial(rt.start, LIMITED, Item(saga_id), saga_id=saga_id)))
    _nothing_of(rt, "bad-4")


def test_a_choreography_start_that_raises_fails_at_once(rt: sa.Runtime) -> None:
    with pytest.raises(sa.StartFailed, match="dispatcher"):
        _promptly(lambda: rt.start(RELAY, Ping("bad-5"), saga_id="bad-5"))
    _nothing_of(rt, "bad-5")
    _completes(rt.start(RELAY, Ping("f"), saga_id="f"))


def test_a_choreography_refused_once_cancels_cleanly_when_started_again(
    journal: Refusing,
) -> None:
    """The refused start's deliveries were planned, never sent: the id's second start must
    not wait for their answers (a cancel waits for every delivery in flight)."""
    entered, release = trips.gate("bad-7", "flight")
    try:
        with sa.Runtime(journal, participants=trips.participants(), sagas=[trips.TRIP]) as rt:
            booked = trips.Booked("bad-7", hold="flight")
            with pytest.raises(sa.StartFailed):
                _promptly(lambda: rt.start(trips.TRIP, booked, saga_id="bad-7"))
            journal.refused = "nothing refused"
            run = rt.start(trips.TRIP, booked, saga_id="bad-7")
            assert entered.wait(WAIT)  # the airline holds a seat: the trip is mid-flight
            rt.cancel("bad-7", "changed plans")
            release.set()
            outcome = _promptly(lambda: run.result(WAIT))
        assert outcome.status is sa.SagaStatus.COMPENSATED, outcome
    finally:
        release.set()
        trips.GATES.clear()


def test_a_reaction_whose_nested_start_raises_fails_instead_of_waiting(
    rt: sa.Runtime, journal: Refusing
) -> None:
    journal.refused = "/"  # only the nested saga (its id is "<choreography id>/...")
    rt.start(RELAY, Ping("g"), saga_id="g")
    deadline = time.monotonic() + WAIT
    while (status := rt.status("g")).status is not sa.SagaStatus.STUCK:
        assert time.monotonic() < deadline, f"the reaction still waits: {status}"
        time.sleep(0.02)
    assert "did not start" in status.reason, status
    journal.refused = "nothing refused"
    rt.resume("g")  # the nested saga's id was left clean: the reaction runs it now
    _completes(rt.run("g"))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_astart_that_raises_fails_at_once(rt: sa.Runtime) -> None:
    with anyio.fail_after(WAIT):
        with pytest.raises(sa.StartFailed, match="'bad-6'"):
            await rt.astart(COUNT, Item("bad-6"), saga_id="bad-6")
        run: Any = await rt.astart(COUNT, Item("h"), saga_id="h")
        outcome = await run.wait(WAIT)
    assert outcome.status is sa.SagaStatus.COMPLETED
    with pytest.raises(sa.UnknownSaga):
        await rt.astatus("bad-6")
