"""Pivot and retriable steps (Garcia-Molina and Salem; Richardson), DESIGN.md guarantee 12.

Before the pivot a failure compensates as always; once the pivot succeeded the saga completes:
the retriable steps after it are retried (any error, ``StepFailed`` included, with a back-off
capped by ``max_backoff``) until they succeed, visible while they wait, never compensated; a
cancel is dropped. The seed example: once the payment is captured and the parcel shipped, a
failing confirmation e-mail does not roll the order back, in both modes, after a restart, and
after a crash at any point.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import pytest

import sagactor as sa
from sagactor.messages import StepRetrying
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.playground.mermaid import flowchart
from sagactor.playground.render.graphs import graph
from sagactor.testing import crash_and_recover, crash_cases

from .chain import MODES
from .flowshop import Effects, Order, pivot_saga, shop

SAGA = pivot_saga()


def _step(
    name: str, *, pivot: bool = False, retriable: bool = False, compensable: bool = True
) -> sa.Step:
    return sa.Step(name, "p", "a", pivot=pivot, retriable=retriable, compensable=compensable)


@pytest.mark.parametrize(
    ("steps", "culprit", "words"),
    [
        ([_step("a", retriable=True), _step("b", pivot=True)], "a", "after the pivot"),
        ([_step("a", retriable=True)], "a", "after the pivot"),
        ([_step("a", pivot=True), _step("b")], "b", "comes after the pivot 'a'"),
        (
            [_step("a", pivot=True), _step("b", retriable=True), _step("c", compensable=False)],
            "c",
            "comes after the pivot 'a'",
        ),
        ([_step("a", pivot=True), _step("b", pivot=True)], "b", "at most one pivot"),
        ([_step("a", pivot=True, retriable=True)], "a", "both pivot and retriable"),
    ],
)
def test_kinds_out_of_order_are_refused_naming_the_step(
    steps: list[sa.Step], culprit: str, words: str
) -> None:
    with pytest.raises(sa.DefinitionError) as error:
        sa.Saga("bad", steps)
    assert error.value.step == culprit
    assert words in str(error.value)


def test_a_pivot_may_end_the_saga_and_retriable_steps_need_no_compensation() -> None:
    class Notify(sa.Participant[None]):
        name = "notify"

        @sa.action("send")
        def send(self, ctx: sa.StepContext, order: Order) -> None: ...

    saga = sa.Saga(
        "notify",
        [
            sa.Step("go", "notify", "send", pivot=True, compensable=False),
            sa.Step("tell", "notify", "send", retriable=True),
        ],
        input_type=Order,
    )
    assert saga.pivot == "go"
    with sa.Runtime.in_memory(participants=[Notify()], sagas=[saga]) as rt:
        assert rt.start(saga, Order("o")).result(5).ok


def _undone(rt: sa.Runtime, participant: str, order: str) -> int:
    state: Effects = rt.state(participant)
    return state.count(order)[1]


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_confirmation_does_not_roll_the_order_back(mode: sa.Mode) -> None:
    with sa.Runtime.in_memory(participants=shop(), sagas=[SAGA]) as rt:
        outcome = rt.start(SAGA, Order("o1", mail_failures=4), saga_id="s1", mode=mode).result(5)
        assert outcome.ok, outcome.reason
        assert outcome.compensated == ()
        retries = [e.event for e in rt.history("s1") if isinstance(e.event, StepRetrying)]
        assert [(r.step, r.attempt) for r in retries] == [("confirm", n) for n in range(1, 5)]
        assert all("the mail server refuses" in r.error for r in retries)
        for participant in ("payments", "shipping", "mailer"):
            state: Effects = rt.state(participant)
            assert state.count("o1") == (1, 0), participant


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("refuse_at", ["charge", "ship"])
def test_a_failure_up_to_the_pivot_compensates(mode: sa.Mode, refuse_at: str) -> None:
    with sa.Runtime.in_memory(participants=shop(), sagas=[SAGA]) as rt:
        outcome = rt.start(SAGA, Order("o1", refuse_at=refuse_at), mode=mode).result(5)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.compensated == (("charge",) if refuse_at == "ship" else ())
        assert _undone(rt, "payments", "o1") == (1 if refuse_at == "ship" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_retries_back_off_up_to_max_backoff_and_show_in_status(mode: sa.Mode) -> None:
    policy = sa.RetryPolicy(backoff=0.01, multiplier=4.0, max_backoff=0.05)
    saga = pivot_saga(retry=policy)
    with sa.Runtime.in_memory(participants=shop(), sagas=[saga]) as rt:
        run = rt.start(saga, Order("o1", mail_failures=6), saga_id="s1", mode=mode)
        seen = set()
        while not (status := rt.status("s1")).status.terminal:
            if status.status is sa.SagaStatus.RUNNING and status.reason:
                seen.add(status.reason.split(" attempt")[0])
            time.sleep(0.002)
        assert run.result(5).ok
        assert seen == {"retrying 'confirm'"}
        waits = [
            round(e.event.due - e.ts, 3)
            for e in rt.history("s1")
            if isinstance(e.event, StepRetrying)
        ]
    assert len(waits) == 6
    assert all(w <= 0.05 + 0.01 for w in waits), waits
    assert waits[-1] >= 0.04, waits  # capped at max_backoff, not grown on


@pytest.mark.parametrize("mode", MODES)
def test_a_cancel_past_the_pivot_is_dropped_with_a_warning(
    mode: sa.Mode, caplog: pytest.LogCaptureFixture
) -> None:
    saga = pivot_saga(retry=sa.RetryPolicy(backoff=0.02, max_backoff=0.02))
    with sa.Runtime.in_memory(participants=shop(), sagas=[saga]) as rt:
        run = rt.start(saga, Order("o1", mail_failures=10), saga_id="s1", mode=mode)
        while not any(isinstance(e.event, StepRetrying) for e in rt.history("s1")):
            time.sleep(0.005)
        with caplog.at_level(logging.WARNING, logger="sagactor"):
            rt.cancel("s1", "changed my mind")
            outcome = run.result(5)
    assert outcome.ok
    assert "the cancel is dropped: its pivot 'ship' succeeded" in caplog.text
    assert "SagaCancelled" not in [e.type for e in rt.history("s1")]


@pytest.mark.parametrize("mode", MODES)
def test_many_sagas_at_once(mode: sa.Mode) -> None:
    orders = [
        Order(f"o{i}", refuse_at="ship" if i % 4 == 0 else "", mail_failures=i % 3)
        for i in range(40)
    ]
    with sa.Runtime.in_memory(participants=shop(), sagas=[SAGA]) as rt:
        runs = {o.id: rt.start(SAGA, o, mode=mode) for o in orders}
        outcomes = {oid: run.result(20) for oid, run in runs.items()}
        for order in orders:
            compensated = order.refuse_at == "ship"
            assert outcomes[order.id].ok is not compensated
            assert _undone(rt, "payments", order.id) == int(compensated)
            assert _undone(rt, "shipping", order.id) == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_restart_while_retrying_completes(mode: sa.Mode, tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    saga = pivot_saga(retry=sa.RetryPolicy(backoff=0.05, max_backoff=0.05))
    rt = sa.Runtime.open(path, participants=shop(), sagas=[saga])
    rt.start(saga, Order("o1", mail_failures=3), saga_id="s1", mode=mode)
    while not any(isinstance(e.event, StepRetrying) for e in rt.history("s1")):
        time.sleep(0.005)
    rt.crash()
    rt.close()
    with sa.Runtime.open(path, participants=shop(), sagas=[saga]) as again:
        outcome = again.run("s1").result(5)
        assert outcome.ok
        for participant in ("payments", "shipping", "mailer"):
            state: Effects = again.state(participant)
            assert state.count("o1") == (1, 0), participant


def _workload(rt: sa.Runtime, mode: sa.Mode) -> list[tuple[str, Order]]:
    started = []
    for order in (Order("ok", mail_failures=2), Order("back", refuse_at="ship")):
        try:
            rt.start(SAGA, order, saga_id=f"s-{order.id}", mode=mode)
        except sa.RuntimeCrashed:
            break
        started.append((f"s-{order.id}", order))
    return started


@pytest.mark.parametrize("mode", MODES)
def test_a_crash_anywhere_keeps_the_point_of_no_return(mode: sa.Mode, tmp_path: Path) -> None:
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY]
    if mode == "choreography":
        points.append(sa.CrashPoint.BEFORE_DISPATCH)

    def runtime(journal: MemoryJournal | SqliteJournal) -> sa.Runtime:
        return sa.Runtime(journal, participants=shop(), sagas=[SAGA])

    workload = functools.partial(_workload, mode=mode)
    cases = crash_cases(lambda: runtime(MemoryJournal()), workload, points)
    for number, case in enumerate(cases):
        memory, path = MemoryJournal(), tmp_path / f"j{number}.db"
        on_disk = number % 4 == 0  # every fourth case on SQLite, reopened from its file

        def reopen(
            memory: MemoryJournal = memory, path: Path = path, disk: bool = on_disk
        ) -> sa.Runtime:
            return runtime(SqliteJournal(path, synchronous="normal") if disk else memory)

        started, rt = crash_and_recover(reopen, workload, case)
        with rt:
            for saga_id, order in started:
                outcome = rt.run(saga_id).result(10)
                back = order.refuse_at == "ship"
                assert outcome.ok is not back, f"{case}: {outcome}"
                payments: Effects = rt.state("payments")
                shipping: Effects = rt.state("shipping")
                mailer: Effects = rt.state("mailer")
                assert payments.count(order.id) == (1, int(back)), case
                assert shipping.count(order.id) == (0, 0) if back else (1, 0), case
                assert mailer.count(order.id) == (0, 0) if back else (1, 0), case


def test_graph_and_mermaid_show_the_pivot_and_the_retried_steps() -> None:
    drawn = graph(SAGA)
    assert "pivot: once it succeeds, the saga completes" in drawn
    assert "mailer.confirm   --fails-->  (retried)" in drawn
    chart = flowchart(SAGA)
    assert "pivot: no return" in chart
    assert "s3 -.->|fails: retried| s3" in chart
    assert "undo confirm" not in chart
