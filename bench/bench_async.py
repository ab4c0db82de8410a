"""Async-handler overhead: the order saga with sync participants, then with async ones.

The async participants are the shop's own, their handlers turned into coroutines that do the
same work and await nothing, so the difference is the cost of the bridge: each async handler
call goes from the participant's actor thread to the runtime's handler loop (an anyio blocking
portal) and back. The last row drives the async handlers from an async caller (asyncio:
``astart`` and ``await run``, many sagas in flight at once).

Run: ``.venv/bin/python bench/bench_async.py [--sagas N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import anyio

import sagactor as sa
from sagactor.examples.shop import (
    Charge,
    Inventory,
    Notification,
    Order,
    Payment,
    Reservation,
    Shipment,
    Shipping,
    make_shop,
    order_saga,
)


class AsyncInventory(Inventory):
    @sa.action("reserve")
    async def reserve_async(self, ctx: sa.StepContext, order: Order) -> Reservation:
        return self.reserve(ctx, order)

    @sa.compensation("reserve")
    async def release_async(self, ctx: sa.StepContext, order: Order, done: Reservation) -> None:
        self.release(ctx, order, done)


class AsyncPayment(Payment):
    @sa.action("charge")
    async def charge_async(self, ctx: sa.StepContext, order: Order) -> Charge:
        return self.charge(ctx, order)

    @sa.compensation("charge")
    async def refund_async(self, ctx: sa.StepContext, order: Order, done: Charge) -> None:
        self.refund(ctx, order, done)


class AsyncShipping(Shipping):
    @sa.action("create")
    async def create_async(self, ctx: sa.StepContext, order: Order) -> Shipment:
        return self.create(ctx, order)

    @sa.compensation("create")
    async def cancel_async(self, ctx: sa.StepContext, order: Order, done: Shipment) -> None:
        self.cancel(ctx, order, done)


class AsyncNotification(Notification):
    @sa.action("send")
    async def send_async(self, ctx: sa.StepContext, order: Order) -> str:
        return self.send(ctx, order)


def async_shop() -> list[sa.Participant[Any]]:
    return [AsyncInventory(), AsyncPayment(), AsyncShipping(), AsyncNotification()]


def orders(n: int, tag: str) -> list[Order]:
    return [Order(f"{tag}-{i}", "bob", "sku-1", 1, 10) for i in range(n)]


def blocking(shop: Callable[[], list[sa.Participant[Any]]], n: int) -> float:
    """Sagas per second: ``start_many`` then ``result`` on each (the sync face)."""
    with sa.Runtime.in_memory(participants=shop()) as rt:
        for run in rt.start_many(order_saga, orders(200, "warm")):
            run.result(60)
        began = time.perf_counter()
        runs = rt.start_many(order_saga, orders(n, "run"))
        for run in runs:
            assert run.result(60).ok
        return n / (time.perf_counter() - began)


def awaited(shop: Callable[[], list[sa.Participant[Any]]], n: int) -> float:
    """Sagas per second: ``astart`` and ``await run`` from asyncio tasks (the async face)."""

    async def go() -> float:
        async with sa.Runtime.in_memory(participants=shop()) as rt:

            async def one(order: Order) -> None:
                run = await rt.astart(order_saga, order)
                assert (await run).ok

            for label, count in (("warm", 200), ("run", n)):
                began = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for order in orders(count, label):
                        tg.start_soon(one, order)
                elapsed = time.perf_counter() - began
            return n / elapsed

    return anyio.run(go)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=1500, help="sagas per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements (best one kept)")
    args = parser.parse_args()

    rows: dict[str, list[float]] = {"sync": [], "async": [], "async, awaited": []}
    for _ in range(args.rounds):  # interleaved, so drift affects all rows alike
        rows["sync"].append(blocking(make_shop, args.sagas))
        rows["async"].append(blocking(async_shop, args.sagas))
        rows["async, awaited"].append(awaited(async_shop, args.sagas))

    best = {name: max(values) for name, values in rows.items()}
    steps = len(order_saga.steps)
    print(
        f"order saga ({steps} steps), in-memory journal, {args.sagas} sagas, "
        f"best of {args.rounds} rounds"
    )
    print(f"{'handlers':<24}{'sagas/s':>10}{'vs sync':>10}{'us/step extra':>16}")
    for name, rate in best.items():
        ratio = rate / best["sync"]
        extra = (1 / rate - 1 / best["sync"]) / steps * 1e6
        caller = " (asyncio caller)" if name == "async, awaited" else ""
        label = name.split(",")[0] + caller
        print(f"{label:<24}{rate:>10.0f}{ratio:>9.2f}x{extra:>16.1f}")
    print(f"async/sync ratio: {best['async'] / best['sync']:.2f}")


if __name__ == "__main__":
    main()
