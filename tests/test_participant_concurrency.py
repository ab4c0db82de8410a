"""``Participant.max_concurrency``: at most N handler calls of a participant at once.

The gateway below measures what a real payment gateway would see: how many of its calls overlap
(a counter outside sagactor's state, under a lock). With ``max_concurrency = 5`` and many sagas
at once it sees 5 at most, and 5 (the calls really overlap: the limit is used, not just
respected); the default sees 1. Its ``ctx.record`` changes all land, each once, and a saga's
compensation still undoes what its action did.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest

import sagactor as sa

from .chain import MODES


class Charges(msgspec.Struct):
    charged: list[str] = []
    refunded: list[str] = []


class Charged(msgspec.Struct, frozen=True):
    order: str
    refund: bool = False


class Gateway(sa.Participant[Charges]):
    """A payment gateway that takes ``max_concurrency`` calls at once; each call takes a while."""

    name = "gateway"
    max_concurrency = 5

    def __init__(self, pause: float = 0.05) -> None:
        self.pause = pause
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def initial_state(self) -> Charges:
        return Charges()

    def _call(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.pause)  # the remote call
        with self.lock:
            self.now -= 1

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, order: str) -> str:
        self._call()
        if order.startswith("bad"):
            raise sa.StepFailed("card declined")
        ctx.record(Charged(order))
        return f"charge-{order}"

    @sa.compensation("charge")
    def refund(self, ctx: sa.StepContext, order: str, done: str) -> None:
        self._call()
        ctx.record(Charged(order, refund=True))

    @sa.evolve
    def _charged(self, state: Charges, change: Charged) -> None:
        (state.refunded if change.refund else state.charged).append(change.order)


class Serial(Gateway):
    name = "serial"
    max_concurrency = 1


class Shop(sa.Participant[None]):
    name = "shop"

    @sa.action("check")
    def check(self, ctx: sa.StepContext, order: str) -> str:
        if order.endswith("-late"):
            raise sa.StepFailed("out of stock")
        return order


def paying(gateway: str = "gateway") -> sa.Saga:
    return sa.Saga(
        f"pay-{gateway}",
        [
            sa.Step("charge", gateway, "charge"),
            sa.Step("check", "shop", "check", compensable=False),
        ],
        input_type=str,
    )


@pytest.mark.parametrize("mode", MODES)
def test_never_more_than_max_concurrency_calls_at_once(mode: sa.Mode) -> None:
    gateway = Gateway()
    with sa.Runtime.in_memory(participants=[gateway, Shop()], sagas=[paying()]) as rt:
        orders = [f"o{i}" for i in range(40)]
        runs = rt.start_many("pay-gateway", orders, mode=mode)
        for run in runs:
            assert run.result(30).ok
        assert gateway.most == 5
        charges: Charges = rt.state("gateway")
        assert sorted(charges.charged) == sorted(orders)  # every change applied, once


def test_the_default_runs_one_call_at_a_time() -> None:
    serial = Serial(pause=0.01)
    with sa.Runtime.in_memory(participants=[serial, Shop()], sagas=[paying("serial")]) as rt:
        for run in rt.start_many("pay-serial", [f"o{i}" for i in range(10)]):
            assert run.result(30).ok
        assert serial.most == 1


@pytest.mark.parametrize("mode", MODES)
def test_failures_and_compensations_under_concurrency(mode: sa.Mode) -> None:
    """Declined cards fail their saga (nothing charged); a later failure refunds the charge."""
    gateway = Gateway(pause=0.02)
    with sa.Runtime.in_memory(participants=[gateway, Shop()], sagas=[paying()]) as rt:
        orders = [f"o{i}" for i in range(10)] + [f"bad{i}" for i in range(5)]
        orders += [f"o{i}-late" for i in range(5)]
        runs = {order: rt.start("pay-gateway", order, mode=mode) for order in orders}
        outcomes = {order: run.result(30) for order, run in runs.items()}
        assert {o for o, out in outcomes.items() if out.ok} == {f"o{i}" for i in range(10)}
        charges: Charges = rt.state("gateway")
        assert sorted(charges.refunded) == sorted(f"o{i}-late" for i in range(5))
        assert sorted(charges.charged) == sorted(o for o in orders if not o.startswith("bad"))
        assert gateway.most <= 5


def test_a_restart_mid_flight_applies_each_call_once(tmp_path: Path) -> None:
    """Closed while calls run: on reopening, each saga completes and is charged once (a
    resent command is answered from the inbox, or runs if its call never journaled)."""
    path = tmp_path / "gw.db"
    orders = [f"o{i}" for i in range(20)]
    rt = sa.Runtime.open(path, participants=[Gateway(pause=0.1), Shop()], sagas=[paying()])
    rt.start_many("pay-gateway", orders)
    time.sleep(0.15)
    rt.crash()
    rt.close()
    gateway = Gateway(pause=0.01)
    with sa.Runtime.open(path, participants=[gateway, Shop()], sagas=[paying()]) as again:
        for order_id in again.saga_ids():
            assert again.run(order_id).result(30).ok
        charges: Charges = again.state("gateway")
        assert sorted(charges.charged) == sorted(orders)
        assert gateway.most <= 5


def test_max_concurrency_is_checked() -> None:
    for bad in (0, -2, 2.5, True):

        class Broken(Gateway):
            name = "broken"
            max_concurrency = bad  # type: ignore[assignment]

        with sa.Runtime.in_memory() as rt, pytest.raises(sa.DefinitionError, match="max_concurr"):
            rt.register(Broken())
