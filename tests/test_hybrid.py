"""Hybrid flows: choreography between bounded contexts, orchestration within (seed 003).

Two directions, both in the hybrid shop (``sagactor.examples.hybrid``): an orchestrated saga's
step publishes an event that a native choreography handles and waits for its terminal event
(``sa.Child`` with a ``Choreography``, the sale's pivot), and a native reaction runs an
orchestrated saga (``ctx.run_saga``: dispatch's delivery). What must hold: a success goes
through every level; a failure at the deepest level is undone there and reported up, level
by level, until the sale refunds and voids; money and stock are conserved and nothing applies
twice, also after a crash anywhere and a recovery (memory and SQLite); the sale's history
nests every level; wrong uses are refused with clear errors.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.examples import hybrid
from sagactor.examples.hybrid import SALE, CustomerNotified, Sale
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.testing import crash_and_recover, crash_cases

from .chain import MODES

SALES = (Sale("ok"), Sale("noaddr", address=""), Sale("nostock", qty=99))
CONTEXTS = ("sales", "billing", "warehouse", "dispatch", "couriers", "notifier")


def _runtime(journal: Any = None) -> sa.Runtime:
    journal = journal if journal is not None else MemoryJournal()
    return sa.Runtime(journal, participants=hybrid.participants(), sagas=hybrid.sagas)


def _problems(rt: sa.Runtime, sale: Sale) -> list[str]:
    """What is wrong with one sale (empty when all is right)."""
    outcome = rt.run(sale.id).result(10)
    books = {name: rt.state(name) for name in CONTEXTS}
    problems = [
        f"{name} applied {key} {n} times"
        for name, ledger in books.items()
        for key, n in ledger.applied.items()
        if n > 1
    ]
    paid = f"{sale.id}/payment" in books["billing"].standing
    placed = f"{sale.id}/order" in books["sales"].standing
    shipped = any(k.startswith(f"{sale.id}/") for k in books["couriers"].standing)
    want = sale.address != "" and sale.qty <= 10
    got = (outcome.status is sa.SagaStatus.COMPLETED, paid, placed, shipped)
    if got != (want, want, want, want):
        problems.append(f"{sale.id}: {got} ({outcome.reason})")
    return problems


def _stock(rt: sa.Runtime, sales: list[Sale]) -> list[str]:
    shipped = sum(s.qty for s in sales if rt.run(s.id).result(10).status is sa.SagaStatus.COMPLETED)
    left = rt.state("warehouse").stock["sku-1"]
    return [] if left + shipped == 10 else [f"stock {left} + shipped {shipped} != 10"]


@pytest.mark.parametrize("mode", MODES)
def test_the_hybrid_shop_ships_or_undoes_every_level(mode: sa.Mode) -> None:
    with _runtime() as rt:
        outcomes = {s.id: rt.start(SALE, s, saga_id=s.id, mode=mode).result(10) for s in SALES}
        problems = [p for s in SALES for p in _problems(rt, s)] + _stock(rt, list(SALES))
        delivery = rt.run("noaddr/fulfilment/dispatch.Picked").result(5)
        fulfilment = rt.run("noaddr/fulfilment").result(5)
    assert problems == []
    ok = outcomes["ok"]
    assert ok.status is sa.SagaStatus.COMPLETED
    assert ok.results["fulfilment"] == CustomerNotified(SALES[0], "trk-ok")  # typed terminal
    # The deepest failure, reported up level by level.
    assert delivery.status is sa.SagaStatus.COMPENSATED
    assert delivery.compensated == ("courier",)
    assert fulfilment.status is sa.SagaStatus.COMPENSATED
    assert "no address to print" in outcomes["noaddr"].reason
    assert outcomes["noaddr"].compensated == ("payment", "order")
    assert "out of stock: sku-1" in outcomes["nostock"].reason


def test_the_sales_history_nests_every_level() -> None:
    with _runtime() as rt:
        rt.start(SALE, Sale("h", address=""), saga_id="h").result(10)
        entries = rt.history("h")
    levels = [e.saga_id for e in entries]
    assert set(levels) == {"h", "h/fulfilment", "h/fulfilment/dispatch.Picked"}
    # The delivery's timeline sits inside fulfilment's, which sits inside the sale's pivot.
    inner = [i for i, who in enumerate(levels) if who == "h/fulfilment/dispatch.Picked"]
    middle = [i for i, who in enumerate(levels) if who == "h/fulfilment"]
    assert middle[0] < inner[0]
    assert inner[-1] < middle[-1]
    kinds = [e.type for e in entries if e.saga_id == "h/fulfilment"]
    assert kinds[:2] == ["SagaStarted", "OrderPaid"]
    assert kinds[-2:] == ["FulfilmentFailed", "SagaCompensated"]


def test_the_playground_runs_the_hybrid_shop(tmp_path: Path) -> None:
    from sagactor.playground.domain import load_domain

    domain = load_domain("sagactor.examples.hybrid")
    assert {s.name for s in domain.sagas} == {"sale", "fulfilment", "delivery"}
    assert len(domain.make_participants()) == len(CONTEXTS)


# -- wrong uses ---------------------------------------------------------------------------------


def test_a_choreography_child_must_be_the_pivot() -> None:
    with pytest.raises(sa.DefinitionError, match="runs only as the pivot"):
        sa.Child("fulfilment", hybrid.FULFILMENT)


class Ping(msgspec.Struct, frozen=True):
    id: str


class Pong(msgspec.Struct, frozen=True):
    id: str


class Echo(sa.Participant[list[str]]):
    """Reacts to Ping by running ``SELF``, a saga with a step at this very participant."""

    name = "echo"

    def initial_state(self) -> list[str]:
        return []

    @sa.action("noop")
    def noop(self, ctx: sa.StepContext, ping: Ping) -> None:
        ctx.run_saga(SELF, ping)  # an action cannot: only a reaction runs a saga

    @sa.on(Ping, emits=(Pong,))
    def react(self, ctx: sa.StepContext, ping: Ping) -> None:
        ctx.run_saga(SELF, ping)
        ctx.publish(Pong(ping.id))


SELF = sa.Saga("self", [sa.Step("noop", "echo", "noop", compensable=False)], input_type=Ping)
ECHO = sa.Choreography("echo-flow", start=Ping, completed=(Pong,))


def test_a_reaction_cannot_run_a_saga_that_needs_its_own_participant() -> None:
    with sa.Runtime.in_memory(participants=[Echo()], sagas=[SELF, ECHO]) as rt:
        rt.start(ECHO, Ping("p"), saga_id="p")
        deadline = time.monotonic() + 10
        while rt.status("p").status is not sa.SagaStatus.STUCK:
            assert time.monotonic() < deadline, rt.status("p")
            time.sleep(0.02)
        status = rt.status("p")
    assert "whose reaction waits for it" in status.reason


def test_an_action_cannot_run_a_saga() -> None:
    with sa.Runtime.in_memory(participants=[Echo()], sagas=[SELF]) as rt:
        outcome = rt.start(SELF, Ping("a"), saga_id="a").result(5)
    assert outcome.status is sa.SagaStatus.COMPENSATED
    assert "only a native choreography's reaction" in outcome.reason


# -- durable: a crash anywhere -------------------------------------------------------------------


def _workload(rt: sa.Runtime, mode: sa.Mode) -> list[Sale]:
    started = []
    for sale in SALES:
        try:
            rt.start(SALE, sale, saga_id=sale.id, mode=mode)
        except sa.RuntimeCrashed:
            break
        started.append(sale)
    return started


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_crash_anywhere_leaves_the_books_right(kind: str, tmp_path: Path) -> None:
    """Crash at every pass of every point (orchestrated sale, native fulfilment, orchestrated
    delivery), recover: every level ends as the sale says, money and stock conserved,
    nothing applied twice, every nested run started once."""
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_REPLY, sa.CrashPoint.BEFORE_DISPATCH]
    workload = functools.partial(_workload, mode="orchestration")
    cases = crash_cases(_runtime, workload, points)
    assert len(cases) > 30
    by_id = {s.id: s for s in SALES}
    for number, case in enumerate(cases):
        memory = MemoryJournal()
        path = tmp_path / f"j{number}.db"

        def reopen(memory: MemoryJournal = memory, path: Path = path) -> sa.Runtime:
            return _runtime(
                memory if kind == "memory" else SqliteJournal(path, synchronous="normal")
            )

        started, rt = crash_and_recover(reopen, workload, case)
        with rt:
            tops = [i for i in rt.saga_ids() if "/" not in i]
            sales = [by_id[i] for i in tops]
            problems = [p for s in sales for p in _problems(rt, s)] + _stock(rt, sales)
            nested = [i for i in rt.saga_ids() if "/" in i]
            starts = {
                i: [e.type for e in rt.history(i) if e.saga_id == i].count("SagaStarted")
                for i in nested
            }
        assert {s.id for s in started} <= set(tops), case
        assert problems == [], f"{case}: {problems}"
        assert set(starts.values()) <= {1}, f"{case}: {starts}"
