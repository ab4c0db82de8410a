"""The async face and async handlers, under asyncio and trio (anyio's pytest plugin).

* ``async def`` handlers run on the runtime's own event loop (an anyio blocking portal), mixed
  freely with sync ones in one saga, in both modes;
* a step timeout cancels a running async handler: nothing of it applies, the step is in doubt
  and compensated (an action) or retried (a compensation);
* ``async with``, ``astart``, ``await run``, ``run.wait`` and ``watch`` never block the caller's
  loop: a ticker task keeps ticking while a slow saga is awaited (asserted by counts).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import pytest

import sagactor as sa
from sagactor.examples.shop import (
    Charge,
    Inventory,
    Notification,
    Order,
    Payment,
    Shipment,
    Shipping,
    conservation_problems,
    order_saga,
)
from sagactor.persistence.memory import MemoryJournal

pytestmark = pytest.mark.anyio

STOCK = {"sku-1": 100}
MODES: tuple[sa.Mode, ...] = ("orchestration", "choreography")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def order(n: int = 1, **changes: Any) -> Order:
    return msgspec.structs.replace(Order(str(n), "alice", "sku-1", 2, 500), **changes)


# -- participants with async handlers ---------------------------------------------------------


class AsyncPayment(Payment):
    """The shop's payment, its handlers async (as if they called a payment API)."""

    @sa.action("charge")
    async def charge_async(self, ctx: sa.StepContext, order: Order) -> Charge:
        await anyio.sleep(0.001)
        return self.charge(ctx, order)

    @sa.compensation("charge")
    async def refund_async(self, ctx: sa.StepContext, order: Order, done: Charge) -> None:
        await anyio.sleep(0.001)
        self.refund(ctx, order, done)


class AsyncShipping(Shipping):
    @sa.action("create")
    async def create_async(self, ctx: sa.StepContext, order: Order) -> Shipment:
        await anyio.sleep(0)
        return self.create(ctx, order)

    @sa.compensation("create")
    async def cancel_async(self, ctx: sa.StepContext, order: Order, done: Shipment) -> None:
        await anyio.sleep(0)
        self.cancel(ctx, order, done)


def mixed_shop() -> list[sa.Participant[Any]]:
    """Sync inventory and notification, async payment and shipping."""
    return [Inventory(dict(STOCK)), AsyncPayment(), AsyncShipping(), Notification()]


class Held(msgspec.Struct, frozen=True):
    key: str


class Freed(msgspec.Struct, frozen=True):
    key: str


class HoldState(msgspec.Struct):
    held: list[str] = []
    freed: list[str] = []


class Hold(sa.Participant[HoldState]):
    """Async handlers that hang (until cancelled) when told to, and say when they were."""

    name = "hold"

    def __init__(self, *, hang_action: bool = False, hang_compensations: int = 0) -> None:
        self.hang_action = hang_action
        self.hang_compensations = hang_compensations
        self.started = threading.Event()
        self.cancelled: list[str] = []  # "<kind> <attempt>" of each handler that was cancelled
        self.compensations = 0

    def initial_state(self) -> HoldState:
        return HoldState()

    async def _hang(self, ctx: sa.StepContext) -> None:
        self.started.set()
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(f"{ctx.kind} {ctx.attempt}")
            raise

    @sa.action("hold")
    async def hold(self, ctx: sa.StepContext, order: Order) -> str:
        ctx.record(Held(ctx.idempotency_key))  # recorded, then cancelled: must be undone
        if self.hang_action:
            await self._hang(ctx)
        await anyio.sleep(0)
        return "held"

    @sa.compensation("hold")
    async def free(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        self.compensations += 1
        ctx.record(Freed(ctx.idempotency_key))
        if self.compensations <= self.hang_compensations:
            await self._hang(ctx)

    @sa.evolve
    def _held(self, state: HoldState, change: Held) -> None:
        state.held.append(change.key)

    @sa.evolve
    def _freed(self, state: HoldState, change: Freed) -> None:
        state.freed.append(change.key)


def hold_saga(timeout: float = 0.2) -> sa.Saga:
    return sa.Saga(
        "hold-order",
        steps=[
            sa.Step("reserve_inventory", participant="inventory", action="reserve"),
            sa.Step(
                "hold",
                participant="hold",
                action="hold",
                timeout=timeout,
                compensation_timeout=timeout,
            ),
            sa.Step("charge_payment", participant="payment", action="charge"),
        ],
        input_type=Order,
    )


async def state(rt: sa.Runtime, participant: str) -> Any:
    return await anyio.to_thread.run_sync(rt.state, participant)


async def history(rt: sa.Runtime, saga_id: str) -> list[sa.HistoryEntry]:
    return await anyio.to_thread.run_sync(rt.history, saga_id)


# -- async handlers -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_async_handlers_mixed_with_sync_ones(mode: sa.Mode) -> None:
    async with sa.Runtime.in_memory(participants=mixed_shop()) as rt:
        outcomes: dict[str, sa.Outcome] = {}

        async def one(n: int) -> None:
            run = await rt.astart(order_saga, order(n), mode=mode)
            outcomes[run.id] = await run

        async with anyio.create_task_group() as tg:
            for n in range(6):
                tg.start_soon(one, n)
        assert len(outcomes) == 6
        assert all(o.ok for o in outcomes.values()), outcomes
        results = next(iter(outcomes.values())).results
        assert set(results) == {"reserve_inventory", "charge_payment", "create_shipment", "notify"}

        # A failure after the async steps: their async compensations undo them.
        rt.inject("notification", "send", sa.Fault("fail"))
        failed = await (await rt.astart(order_saga, order(99), mode=mode))
        assert failed.status is sa.SagaStatus.COMPENSATED
        assert failed.compensated == ("create_shipment", "charge_payment", "reserve_inventory")

        states = {name: await state(rt, name) for name in rt.participants}
        assert conservation_problems(states, STOCK) == []
        assert len(states["payment"].charges) == 6
        assert len(states["shipping"].shipments) == 6
        assert states["shipping"].cancelled == 1
        assert states["inventory"].stock["sku-1"] == 100 - 6 * 2


async def test_async_handler_failures_count_like_sync_ones() -> None:
    """A business failure raised by an async handler fails the step (and compensates)."""
    async with sa.Runtime.in_memory(
        participants=[Inventory(dict(STOCK)), AsyncPayment(balances={"bob": 10}), Shipping()]
    ) as rt:
        saga = sa.Saga("pay", [order_saga.steps[0], order_saga.steps[1]], input_type=Order)
        outcome = await (await rt.astart(saga, order(customer="bob", amount=500)))
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "bob cannot pay 500" in outcome.reason
        assert (await state(rt, "inventory")).stock == STOCK


@pytest.mark.parametrize("mode", MODES)
async def test_async_handler_cancelled_by_its_timeout_is_compensated(mode: sa.Mode) -> None:
    hold = Hold(hang_action=True)
    async with sa.Runtime.in_memory(participants=[Inventory(dict(STOCK)), hold, Payment()]) as rt:
        outcome = await (await rt.astart(hold_saga(), order(), mode=mode)).wait(timeout=10)

        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert "timed out" in outcome.reason
        assert hold.cancelled == ["action 1"]  # the handler itself was cancelled
        held = await state(rt, "hold")
        assert held.held == []  # what it recorded before the cancel was undone ...
        assert held.freed == []  # ... and its compensation found nothing to undo
        assert hold.compensations == 0
        inventory = await state(rt, "inventory")
        assert inventory.stock == STOCK  # the step before it was compensated
        assert inventory.reserved == {}
        assert (await state(rt, "payment")).charges == {}  # the step after it never ran
        types = [e.type for e in await history(rt, outcome.saga_id)]
        assert "StepTimedOut" in types
        assert types[-1] == "SagaCompensated"


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_async_compensation_is_retried(mode: sa.Mode) -> None:
    hold = Hold(hang_compensations=1)
    async with sa.Runtime.in_memory(participants=[Inventory(dict(STOCK)), hold, Payment()]) as rt:
        rt.inject("payment", "charge", sa.Fault("fail"))
        outcome = await (await rt.astart(hold_saga(), order(), mode=mode)).wait(timeout=10)

        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.compensated == ("hold", "reserve_inventory")
        assert hold.cancelled == ["compensation 1"]
        assert hold.compensations == 2
        held = await state(rt, "hold")
        assert held.freed == [f"{outcome.saga_id}/hold"]  # applied once: the cancelled one undone
        if mode == "orchestration":  # (in choreography the participant retries by itself)
            types = [e.type for e in await history(rt, outcome.saga_id)]
            assert "CompensationFailed" in types


async def test_close_cancels_running_async_handlers() -> None:
    hold = Hold(hang_action=True)
    rt = sa.Runtime.in_memory(participants=[Inventory(dict(STOCK)), hold, Payment()])
    async with rt:
        run = await rt.astart(hold_saga(timeout=60), order())
        await anyio.to_thread.run_sync(hold.started.wait, 10)
    assert hold.cancelled == ["action 1"]  # closing did not wait for it to finish
    assert not rt.engine.env.portal.running
    with pytest.raises(sa.RuntimeClosed):
        await run


async def test_crash_stops_the_handler_loop() -> None:
    hold = Hold(hang_action=True)
    rt = sa.Runtime.in_memory(participants=[Inventory(dict(STOCK)), hold, Payment()])
    async with rt:
        run = await rt.astart(hold_saga(timeout=60), order())
        await anyio.to_thread.run_sync(hold.started.wait, 10)
        await anyio.to_thread.run_sync(rt.crash)
        assert not rt.engine.env.portal.running
        assert hold.cancelled == ["action 1"]
        with pytest.raises(sa.RuntimeCrashed):
            await run


# -- the async face -----------------------------------------------------------------------------


async def test_the_loop_stays_responsive_while_a_saga_is_awaited() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with sa.Runtime.in_memory(participants=mixed_shop()) as rt:
        rt.inject("shipping", "create", sa.Fault("delay", seconds=0.3))
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            run = await rt.astart(order_saga, order())
            before = ticks
            outcome = await run
            during_await = ticks - before
            before = ticks
            seen = [entry async for entry in rt.watch((await rt.astart(order_saga, order(2))).id)]
            during_watch = ticks - before
            tg.cancel_scope.cancel()
    assert outcome.ok
    assert seen[-1].type == "SagaCompleted"
    # 0.3 s of delay at one tick per 10 ms: a blocked loop would tick zero times meanwhile.
    assert during_await >= 10, during_await
    assert during_watch >= 10, during_watch


async def test_start_is_idempotent_and_conflicts_are_raised() -> None:
    async with sa.Runtime.in_memory(participants=mixed_shop()) as rt:
        first = await rt.astart(order_saga, order(), saga_id="order-1")
        again = await rt.astart(order_saga, order(), saga_id="order-1")
        assert first.id == again.id == "order-1"
        with pytest.raises(sa.SagaIdConflict):
            await rt.astart(order_saga, order(qty=3), saga_id="order-1")
        assert (await first).ok
        assert (await again.wait()).ok
    with pytest.raises(sa.RuntimeClosed):
        await rt.astart(order_saga, order(), saga_id="order-2")


async def test_wait_times_out_without_ending_the_saga() -> None:
    async with sa.Runtime.in_memory(participants=mixed_shop()) as rt:
        rt.inject("payment", "charge", sa.Fault("delay", seconds=0.3))
        run = await rt.astart(order_saga, order())
        with pytest.raises(sa.SagaTimeout):
            await run.wait(timeout=0.01)
        assert (await run.wait(timeout=10)).ok


async def test_a_saga_that_ended_before_this_runtime_is_awaited_from_the_journal() -> None:
    journal = MemoryJournal()
    async with sa.Runtime.in_memory(journal=journal, participants=mixed_shop()) as first:
        run = await first.astart(order_saga, order())
        assert (await run).ok
    again = sa.Runtime.in_memory(journal=journal, participants=mixed_shop(), sagas=[order_saga])
    async with again as rt:
        outcome = await rt.run(run.id)
        assert outcome.ok
        assert outcome.saga_id == run.id


# -- watch --------------------------------------------------------------------------------------


async def collect(events: AsyncIterator[sa.HistoryEntry]) -> list[sa.HistoryEntry]:
    with anyio.fail_after(10):
        return [entry async for entry in events]


def timeline(entries: list[sa.HistoryEntry]) -> list[tuple[int, str, str]]:
    return [(e.position, e.source, e.type) for e in entries]


def open_runtime(kind: str, tmp_path: Path) -> sa.Runtime:
    if kind == "memory":
        return sa.Runtime.in_memory(participants=mixed_shop())
    return sa.Runtime.open(tmp_path / "journal.db", synchronous="normal", participants=mixed_shop())


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", MODES)
async def test_watch_yields_the_history_as_it_happens_and_ends_at_the_end(
    mode: sa.Mode, kind: str, tmp_path: Path
) -> None:
    async with open_runtime(kind, tmp_path) as rt:
        rt.inject("shipping", "create", sa.Fault("delay", seconds=0.2))
        run = await rt.astart(order_saga, order(), mode=mode)
        others = [await rt.astart(order_saga, order(n), mode=mode) for n in range(2, 5)]
        seen: list[sa.HistoryEntry] = []
        status_at_first: sa.SagaStatus | None = None
        with anyio.fail_after(10):  # no polling: only commit signals wake the watch
            async for entry in rt.watch(run.id):
                if status_at_first is None:
                    status_at_first = (await anyio.to_thread.run_sync(rt.status, run.id)).status
                seen.append(entry)
        assert status_at_first is sa.SagaStatus.RUNNING  # it was watched live
        final = await history(rt, run.id)
        assert timeline(seen) == timeline(final)  # in order, none missing, none twice
        assert [e.event for e in seen] == [e.event for e in final]
        positions = [e.position for e in seen]
        assert positions == sorted(set(positions))
        assert seen[0].type == "SagaStarted"
        assert seen[-1].type == "SagaCompleted"
        assert {e.source for e in seen} >= {"coordinator", "payment", "shipping", "inventory"}
        assert all(e.cause.startswith(f"{run.id}/") for e in seen if e.source != "coordinator")
        for other in others:
            assert (await other).ok


async def test_watch_ends_at_compensation_and_replays_a_finished_saga() -> None:
    async with sa.Runtime.in_memory(participants=mixed_shop()) as rt:
        rt.inject("shipping", "create", sa.Fault("fail"))
        run = await rt.astart(order_saga, order())
        other = await rt.astart(order_saga, order(2))  # interleaves with it in the journal
        live = await collect(rt.watch(run.id))
        assert live[-1].type == "SagaCompensated"
        assert all(e.cause.startswith(f"{run.id}/") or e.source == "coordinator" for e in live)
        replayed = await collect(rt.watch(run.id))  # already ended: its whole history, then end
        assert timeline(replayed) == timeline(live) == timeline(await history(rt, run.id))
        assert (await other).status is sa.SagaStatus.COMPENSATED


async def test_watch_of_an_unknown_saga_or_a_closing_runtime_raises() -> None:
    async with sa.Runtime.in_memory(participants=mixed_shop()) as rt:
        with pytest.raises(sa.UnknownSaga):
            await collect(rt.watch("nope"))
        rt.inject("shipping", "create", sa.Fault("delay", seconds=30))
        run = await rt.astart(order_saga, order())
        seen: list[sa.HistoryEntry] = []

        async def watch_and_close() -> None:
            async for entry in rt.watch(run.id):
                seen.append(entry)
                if entry.type == "StepSucceeded":
                    await rt.aclose()  # while the watch waits for the delayed step

        with pytest.raises(sa.RuntimeClosed):
            await watch_and_close()
        assert seen[0].type == "SagaStarted"
