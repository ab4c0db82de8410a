"""A deadline for the whole saga (``Saga(..., deadline=seconds)``).

When it passes, a saga before its pivot is compensated (its current step in doubt), one past
its pivot is reported overdue and completes. The deadline is journaled as a wall-clock time
when the saga starts, so a restart does not restart the clock: a saga whose deadline passed
while the runtime was down is compensated as soon as it is recovered.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import SagaOverdue

from .chain import MODES
from .flowshop import Effects, Order, pivot_saga, shop


class Booked(msgspec.Struct, frozen=True):
    order: str


class Unbooked(msgspec.Struct, frozen=True):
    order: str


class Book(msgspec.Struct):
    booked: list[str] = []
    unbooked: list[str] = []


class Desk(sa.Participant[Book]):
    name = "desk"

    def initial_state(self) -> Book:
        return Book()

    @sa.action("book")
    def book(self, ctx: sa.StepContext, order: Order) -> str:
        ctx.record(Booked(order.id))
        return order.id

    @sa.compensation("book")
    def unbook(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        ctx.record(Unbooked(done))

    @sa.evolve
    def _booked(self, state: Book, change: Booked) -> None:
        state.booked.append(change.order)

    @sa.evolve
    def _unbooked(self, state: Book, change: Unbooked) -> None:
        state.unbooked.append(change.order)


class Supplier(sa.Participant[None]):
    """Never answers orders whose id starts with ``slow`` (a technical error each time)."""

    name = "supplier"

    @sa.action("order")
    def order(self, ctx: sa.StepContext, order: Order) -> None:
        if order.id.startswith("slow"):
            raise ConnectionError("the supplier does not answer")

    @sa.compensation("order")
    def cancel(self, ctx: sa.StepContext, order: Order, done: None) -> None: ...


def booking(deadline: float) -> sa.Saga:
    return sa.Saga(
        "booking",
        [
            sa.Step("book", "desk", "book"),
            sa.Step(
                "order",
                "supplier",
                "order",
                retry=sa.RetryPolicy(max_attempts=1_000_000, backoff=0.01, max_backoff=0.01),
            ),
        ],
        input_type=Order,
        deadline=deadline,
    )


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "soon", True])
def test_a_deadline_must_be_a_positive_number(bad: object) -> None:
    with pytest.raises(sa.DefinitionError, match="deadline must be a positive number"):
        sa.Saga("s", [sa.Step("a", "p", "a")], deadline=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
def test_a_passed_deadline_compensates_before_the_pivot(mode: sa.Mode) -> None:
    saga = booking(0.3)
    with sa.Runtime.in_memory(participants=[Desk(), Supplier()], sagas=[saga]) as rt:
        began = time.monotonic()
        outcome = rt.start(saga, Order("slow-1"), saga_id="s1", mode=mode).result(5)
        took = time.monotonic() - began
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "deadline passed" in outcome.reason
        assert outcome.compensated == ("order", "book")
        assert 0.3 <= took < 2.0
        book: Book = rt.state("desk")
        assert book.booked == book.unbooked == ["slow-1"]
        overdue = [e.event for e in rt.history("s1") if isinstance(e.event, SagaOverdue)]
        assert [o.past_pivot for o in overdue] == [False]


@pytest.mark.parametrize("mode", MODES)
def test_past_the_pivot_it_is_reported_overdue_and_completes(mode: sa.Mode) -> None:
    saga = pivot_saga(deadline=0.1, retry=sa.RetryPolicy(backoff=0.02, max_backoff=0.02))
    with sa.Runtime.in_memory(participants=shop(), sagas=[saga]) as rt:
        outcome = rt.start(saga, Order("o1", mail_failures=15), saga_id="s1", mode=mode).result(5)
        assert outcome.ok
        assert outcome.reason.startswith("overdue: its deadline passed")
        overdue = [e.event for e in rt.history("s1") if isinstance(e.event, SagaOverdue)]
        assert [o.past_pivot for o in overdue] == [True]
        payments: Effects = rt.state("payments")
        assert payments.count("o1") == (1, 0)


@pytest.mark.parametrize("mode", MODES)
def test_many_sagas_at_once_only_the_late_ones_are_compensated(mode: sa.Mode) -> None:
    saga = booking(0.3)
    ids = [f"slow-{i}" if i % 2 else f"fast-{i}" for i in range(30)]
    with sa.Runtime.in_memory(participants=[Desk(), Supplier()], sagas=[saga]) as rt:
        runs = {i: rt.start(saga, Order(i), mode=mode) for i in ids}
        for order_id, run in runs.items():
            outcome = run.result(10)
            assert outcome.ok is order_id.startswith("fast"), outcome
        book: Book = rt.state("desk")
        assert sorted(book.unbooked) == sorted(i for i in ids if i.startswith("slow"))


@pytest.mark.parametrize("down_for", [0.3, 1.0])
@pytest.mark.parametrize("mode", MODES)
def test_a_restart_does_not_restart_the_clock(
    mode: sa.Mode, down_for: float, tmp_path: Path
) -> None:
    """Down before the deadline (0.3 s): compensated when the journaled deadline passes, not
    a full deadline after the restart. Down past it (1.0 s): compensated as soon as recovered.
    """
    saga = booking(1.0)
    path = tmp_path / "booking.db"
    rt = sa.Runtime.open(path, participants=[Desk(), Supplier()], sagas=[saga])
    began = time.time()
    for saga_id in ("a", "b"):
        rt.start(saga, Order(f"slow-{saga_id}"), saga_id=saga_id, mode=mode)
    time.sleep(0.2)
    rt.crash()
    rt.close()
    time.sleep(down_for)
    with sa.Runtime.open(path, participants=[Desk(), Supplier()], sagas=[saga]) as again:
        reopened = time.time()
        for saga_id in ("a", "b"):
            outcome = again.run(saga_id).result(5)
            assert outcome.status is sa.SagaStatus.COMPENSATED
            assert "deadline passed" in outcome.reason
        done = time.time()
        book: Book = again.state("desk")
        assert sorted(book.unbooked) == ["slow-a", "slow-b"]
    assert done - began >= 1.0
    assert done - max(reopened, began + 1.0) < 0.4, (done - began, reopened - began)
