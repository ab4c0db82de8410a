"""A handler that raises ``KeyboardInterrupt`` or ``SystemExit`` ends its own runtime, never
another one in the same process.

pykka's actor loop answers such an exception by stopping every actor of the process
(``ActorRegistry.stop_all``): an unrelated second runtime died with the first, its callers saw
``SagaTimeout`` and the next ``start`` a raw ``pykka.ActorDeadError``. Now the runtime that
hosts the handler dies as at a crash point (its callers get ``RuntimeCrashed``, nothing more
is journaled), a second runtime keeps working, and reopening the journal finishes the saga.
This holds for sync and async handlers, for orchestration, step-list choreography and native
``@on`` reactions, in memory and on SQLite. No public method lets pykka's own error through.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pykka
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


class Order(msgspec.Struct, frozen=True):
    n: int
    block: bool = False


class Paid(msgspec.Struct, frozen=True):
    n: int


class Charged(msgspec.Struct, frozen=True):
    key: str


class Refunded(msgspec.Struct, frozen=True):
    key: str


class Ledger(msgspec.Struct):
    charged: list[str] = []
    refunded: list[str] = []


GATE = threading.Event()  # a blocking order waits on it


class Bank(sa.Participant[Ledger]):
    """Charges an order; raises ``abort`` (once per instance) from the handler named ``where``."""

    name = "bank"

    def __init__(self, abort: type[BaseException] | None = None, where: str = "") -> None:
        self.abort = abort
        self.where = where

    def initial_state(self) -> Ledger:
        return Ledger()

    def _maybe_abort(self, where: str) -> None:
        if self.abort is not None and self.where == where:
            error, self.abort = self.abort, None
            raise error("the handler gives up")

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, order: Order) -> str:
        self._maybe_abort("sync")
        if order.block:
            GATE.wait(WAIT)
        ctx.record(Charged(ctx.idempotency_key))
        return ctx.idempotency_key

    @sa.action("charge_async")
    async def charge_async(self, ctx: sa.StepContext, order: Order) -> str:
        await anyio.sleep(0)
        self._maybe_abort("async")
        ctx.record(Charged(ctx.idempotency_key))
        return ctx.idempotency_key

    @sa.compensation("charge")
    def refund(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        ctx.record(Refunded(done))

    @sa.compensation("charge_async")
    async def refund_async(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        ctx.record(Refunded(done))

    @sa.on(Order, emits=(Paid,))
    def on_order(self, ctx: sa.StepContext, order: Order) -> None:
        self._maybe_abort("native")
        ctx.record(Charged(f"{ctx.saga_id}/native"))
        ctx.publish(Paid(order.n))

    @sa.evolve
    def _charged(self, state: Ledger, change: Charged) -> None:
        state.charged.append(change.key)

    @sa.evolve
    def _refunded(self, state: Ledger, change: Refunded) -> None:
        state.refunded.append(change.key)


class AsyncBank(Bank):
    """The same bank whose native reaction is an ``async def``."""

    @sa.on(Order, emits=(Paid,))
    async def on_order(self, ctx: sa.StepContext, order: Order) -> None:  # type: ignore[override]
        await anyio.sleep(0)
        self._maybe_abort("native-async")
        ctx.record(Charged(f"{ctx.saga_id}/native"))
        ctx.publish(Paid(order.n))


SYNC = sa.Saga("pay", steps=[sa.Step("charge", participant="bank", action="charge")])
ASYNC = sa.Saga("pay-async", steps=[sa.Step("charge", participant="bank", action="charge_async")])
NATIVE = sa.Choreography("pay-native", start=Order, completed=(Paid,))

# where the handler raises -> (saga, mode, bank class)
STYLES: dict[str, tuple[sa.Saga | sa.Choreography, sa.Mode, type[Bank]]] = {
    "sync": (SYNC, "orchestration", Bank),
    "sync-choreography": (SYNC, "choreography", Bank),
    "async": (ASYNC, "orchestration", Bank),
    "native": (NATIVE, "orchestration", Bank),
    "native-async": (NATIVE, "orchestration", AsyncBank),
}


def _where(style: str) -> str:
    return "sync" if style == "sync-choreography" else style


def _opener(storage: str, tmp_path: Path) -> Callable[..., sa.Runtime]:
    journal = MemoryJournal()

    def open_runtime(bank: Bank) -> sa.Runtime:
        sagas: list[sa.Saga | sa.Choreography] = [SYNC, ASYNC, NATIVE]
        if storage == "sqlite":
            return sa.Runtime.open(tmp_path / "a.db", participants=[bank], sagas=sagas)
        return sa.Runtime.in_memory(journal=journal, participants=[bank], sagas=sagas)

    return open_runtime


def _start(rt: sa.Runtime, style: str, n: int, saga_id: str | None = None) -> sa.SagaRun:
    saga, mode, _ = STYLES[style]
    return rt.start(saga, Order(n), saga_id=saga_id, mode=mode)


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
@pytest.mark.parametrize(
    ("style", "error"),
    [
        ("sync", KeyboardInterrupt),
        ("sync", SystemExit),
        ("sync-choreography", KeyboardInterrupt),
        ("async", KeyboardInterrupt),
        ("async", SystemExit),
        ("native", SystemExit),
        ("native-async", KeyboardInterrupt),
    ],
)
def test_a_handler_raising_a_base_exception_ends_only_its_own_runtime(
    tmp_path: Path, storage: str, style: str, error: type[BaseException]
) -> None:
    _, _, kind = STYLES[style]
    open_doomed = _opener(storage, tmp_path)
    with sa.Runtime.open(tmp_path / "other.db", participants=[kind()]) as other:
        before = [_start(other, style, n) for n in range(20)]
        with open_doomed(kind(error, _where(style))) as rt:
            run = _start(rt, style, 1, saga_id="doomed")
            with pytest.raises(sa.RuntimeCrashed, match=error.__name__):
                run.result(WAIT)
            assert rt.crashed
            # Every public method says the runtime crashed; none lets pykka's error through.
            with pytest.raises(sa.RuntimeCrashed):
                _start(rt, style, 2)
            with pytest.raises(sa.RuntimeCrashed):
                rt.state("bank")
            # (status reads the journal: on SQLite the crash released the file)
            with pytest.raises((sa.RuntimeCrashed, sa.RuntimeClosed)):
                rt.run("doomed").result(WAIT)
            with pytest.raises(sa.RuntimeCrashed):
                rt.recover()
        # The other runtime in the same process never noticed.
        after = [_start(other, style, n) for n in range(20, 40)]
        outcomes = [r.result(WAIT) for r in before + after]
        assert {o.status for o in outcomes} == {sa.SagaStatus.COMPLETED}
        assert len(other.state("bank").charged) == 40

    # Reopened with a handler that no longer raises, the journal finishes the saga: its
    # effect applied once.
    with open_doomed(kind()) as rt:
        assert rt.run("doomed").result(WAIT).status is sa.SagaStatus.COMPLETED
        charged = rt.state("bank").charged
        assert len(charged) == 1
        assert charged[0].startswith("doomed/")
        assert _start(rt, style, 3).result(WAIT).status is sa.SagaStatus.COMPLETED


def test_a_compensation_raising_systemexit_ends_its_runtime_and_the_reopened_one_undoes(
    tmp_path: Path,
) -> None:
    class Flaky(sa.Participant[None]):
        name = "flaky"

        @sa.action("fail")
        def fail(self, ctx: sa.StepContext, order: Order) -> None:
            raise sa.StepFailed("no")

    class Sulky(Bank):
        @sa.compensation("charge")
        def refund(self, ctx: sa.StepContext, order: Order, done: str) -> None:
            self._maybe_abort("refund")
            ctx.record(Refunded(done))

    saga = sa.Saga(
        "pay-then-fail",
        steps=[
            sa.Step("charge", participant="bank", action="charge"),
            sa.Step("fail", participant="flaky", action="fail", compensable=False),
        ],
    )
    path = tmp_path / "c.db"
    with sa.Runtime.open(path, participants=[Sulky(SystemExit, "refund"), Flaky()]) as rt:
        run = rt.start(saga, Order(1), saga_id="s")
        with pytest.raises(sa.RuntimeCrashed, match="SystemExit"):
            run.result(WAIT)
    with sa.Runtime.open(path, participants=[Sulky(), Flaky()], sagas=[saga]) as rt:
        outcome = rt.run("s").result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert rt.state("bank") == Ledger(charged=["s/charge"], refunded=["s/charge"])


def test_actors_stopped_from_outside_end_the_runtime_with_a_clear_error(tmp_path: Path) -> None:
    """``pykka.ActorRegistry.stop_all()`` (called by anything in the process): the runtime
    reports ``RuntimeCrashed`` to its waiting callers and from every method, and its journal
    reopens."""
    GATE.clear()
    path = tmp_path / "s.db"
    try:
        with sa.Runtime.open(path, participants=[Bank()]) as rt:
            done = rt.start(SYNC, Order(0)).result(WAIT)
            assert done.status is sa.SagaStatus.COMPLETED
            run = rt.start(SYNC, Order(1, block=True), saga_id="blocked")
            pykka.ActorRegistry.stop_all(block=False)
            GATE.set()
            with pytest.raises(sa.RuntimeCrashed, match="stopped from outside"):
                run.result(WAIT)
            for call in (
                lambda: rt.start(SYNC, Order(2)),
                lambda: rt.state("bank"),
                lambda: rt.cancel("blocked"),
                lambda: rt.resume("blocked"),
            ):
                with pytest.raises(sa.RuntimeCrashed):
                    call()
    finally:
        GATE.set()
    with sa.Runtime.open(path, participants=[Bank()], sagas=[SYNC]) as rt:
        assert rt.run("blocked").result(WAIT).status is sa.SagaStatus.COMPLETED
        assert sorted(rt.state("bank").charged) == sorted(
            [f"{done.saga_id}/charge", "blocked/charge"]
        )


def test_a_closed_runtime_says_closed_not_pykka(tmp_path: Path) -> None:
    rt = sa.Runtime.in_memory(participants=[Bank()])
    run = rt.start(SYNC, Order(1))
    assert run.result(WAIT).status is sa.SagaStatus.COMPLETED
    rt.close()
    calls: list[Callable[[], Any]] = [
        lambda: rt.start(SYNC, Order(2)),
        lambda: rt.state("bank"),
        lambda: rt.recover(),
    ]
    for call in calls:
        with pytest.raises(sa.RuntimeClosed):
            call()
