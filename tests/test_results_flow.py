"""Results flow to later steps: ``ctx.results`` in actions and compensations, typed, the same
live and after a restart, in both modes.

The shop of ``tests/flowshop.py`` records what each handler read: ``ship`` the payment id that
``charge`` returned, ``confirm`` the parcel's tracking number, and on the way back ``recall``
and ``refund`` both. The values come from the saga's journal on the command, so a crash at any
point and a recovery must leave the same reads as a run without one.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.testing import crash_and_recover, crash_cases

from .chain import MODES
from .flowshop import Effect, Effects, Order, Payment, flow_saga, shop

SAGA = flow_saga()


def _expect(rt: sa.Runtime, saga_id: str, order: Order) -> list[str]:
    """What is wrong with one saga's effects and reads (empty when all is right)."""
    outcome = rt.run(saga_id).result(10)
    pay = f"pay-{saga_id}/charge"
    parcel = f"trk-{order.id}"
    states: dict[str, Effects] = {p: rt.state(p) for p in ("payments", "shipping", "mailer")}
    expected: dict[str, tuple[list[Effect], list[Effect]]]
    if not order.refuse_at:
        want = sa.SagaStatus.COMPLETED
        expected = {
            "payments": ([Effect(order.id, pay, True)], []),
            "shipping": ([Effect(order.id, pay, True)], []),
            "mailer": ([Effect(order.id, parcel, True)], []),
        }
    else:
        want = sa.SagaStatus.COMPENSATED
        expected = {
            "payments": ([Effect(order.id, pay, True)], [Effect(order.id, pay, True)]),
            "shipping": (
                [Effect(order.id, pay, True)],
                [Effect(order.id, f"{pay} {parcel}", True)],
            ),
            "mailer": ([], []),
        }
    problems = [] if outcome.status is want else [f"{saga_id}: {outcome.status} {outcome.reason}"]
    for name, (done, undone) in expected.items():
        state = states[name]
        got = (
            [e for e in state.done if e.order == order.id],
            [e for e in state.undone if e.order == order.id],
        )
        if got != (done, undone):
            problems.append(f"{saga_id} at {name}: {got} != {(done, undone)}")
    return problems


@pytest.mark.parametrize("mode", MODES)
def test_later_steps_read_earlier_results_typed(mode: sa.Mode) -> None:
    with sa.Runtime.in_memory(participants=shop(), sagas=[SAGA]) as rt:
        order = Order("o1")
        outcome = rt.start(SAGA, order, saga_id="s1", mode=mode).result(5)
        assert outcome.ok
        assert outcome.results["charge"] == Payment("pay-s1/charge", 100)
        assert _expect(rt, "s1", order) == []


@pytest.mark.parametrize("mode", MODES)
def test_compensations_read_earlier_results(mode: sa.Mode) -> None:
    """A refused confirmation: ``recall`` reads the payment and the parcel, ``refund`` its
    own payment, both typed."""
    with sa.Runtime.in_memory(participants=shop(), sagas=[SAGA]) as rt:
        order = Order("o1", refuse_at="confirm")
        outcome = rt.start(SAGA, order, saga_id="s1", mode=mode).result(5)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.compensated == ("ship", "charge")
        assert _expect(rt, "s1", order) == []


class Early(sa.Participant[None]):
    name = "early"

    @sa.action("peek")
    def peek(self, ctx: sa.StepContext, order: Order) -> int:
        return len(ctx.results["later"])  # no step "later" ran before this one


class Later(sa.Participant[None]):
    name = "later"

    @sa.action("peek")
    def peek(self, ctx: sa.StepContext, order: Order) -> int:
        return 1


@pytest.mark.parametrize("mode", MODES)
def test_reading_a_result_that_is_not_there_says_which_exist(mode: sa.Mode) -> None:
    saga = sa.Saga(
        "peek",
        [
            sa.Step("first", "later", "peek", compensable=False),
            sa.Step("early", "early", "peek", compensable=False),
            sa.Step("later", "later", "peek", compensable=False),
        ],
        input_type=Order,
    )
    with sa.Runtime.in_memory(participants=[Early(), Later()], sagas=[saga]) as rt:
        outcome = rt.start(saga, Order("o"), mode=mode).result(5)
    assert outcome.status is sa.SagaStatus.COMPENSATED
    assert "no result of step 'later' before step 'early'" in outcome.reason
    assert "it can read: 'first'" in outcome.reason


@pytest.mark.parametrize("mode", MODES)
def test_many_sagas_at_once_each_read_their_own(mode: sa.Mode) -> None:
    orders = [Order(f"o{i}", refuse_at="confirm" if i % 3 == 0 else "") for i in range(60)]
    with sa.Runtime.in_memory(participants=shop(), sagas=[SAGA]) as rt:
        runs = [rt.start(SAGA, o, saga_id=f"s{o.id}", mode=mode) for o in orders]
        for run in runs:
            run.result(20)
        problems = [p for o in orders for p in _expect(rt, f"s{o.id}", o)]
    assert problems == []


def _workload(rt: sa.Runtime, mode: sa.Mode) -> list[tuple[str, Order]]:
    started = []
    for order in (Order("ok"), Order("back", refuse_at="confirm")):
        try:
            rt.start(SAGA, order, saga_id=f"s-{order.id}", mode=mode)
        except sa.RuntimeCrashed:
            break
        started.append((f"s-{order.id}", order))
    return started


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
def test_a_crash_anywhere_leaves_the_same_reads(kind: str, mode: sa.Mode, tmp_path: Path) -> None:
    """Crash at every pass of every point, recover: each handler read what it reads live."""
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY]
    if mode == "choreography":
        points.append(sa.CrashPoint.BEFORE_DISPATCH)

    def runtime(journal: MemoryJournal | SqliteJournal) -> sa.Runtime:
        return sa.Runtime(journal, participants=shop(), sagas=[SAGA])

    workload = functools.partial(_workload, mode=mode)
    cases = crash_cases(lambda: runtime(MemoryJournal()), workload, points)
    for number, case in enumerate(cases):
        memory = MemoryJournal()
        path = tmp_path / f"j{number}.db"

        def reopen(memory: MemoryJournal = memory, path: Path = path) -> sa.Runtime:
            return runtime(
                memory if kind == "memory" else SqliteJournal(path, synchronous="normal")
            )

        started, rt = crash_and_recover(reopen, workload, case)
        with rt:
            problems = [p for saga_id, order in started for p in _expect(rt, saga_id, order)]
        assert problems == [], f"{case}: {problems}"
