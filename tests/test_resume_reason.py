"""A resumed saga that ends compensated gives the original failure as its reason.

Before, a stuck saga (its compensation kept failing) that an operator resumed ended
``compensated`` with the stale reason "compensation of ... failed", which hid why the saga was
undone at all. Now the reason is the original failure's again ("step 'pay' failed: ..."),
journaled so, live and after a restart; in memory and in SQLite, in both modes.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


class Cart(msgspec.Struct, frozen=True):
    item: str


class Shop(sa.Participant[None]):
    name = "shop"

    @sa.action("reserve")
    def reserve(self, ctx: sa.StepContext, cart: Cart) -> str:
        return cart.item

    @sa.compensation("reserve")
    def release(self, ctx: sa.StepContext, cart: Cart, done: str) -> None:
        pass

    @sa.action("pay")
    def pay(self, ctx: sa.StepContext, cart: Cart) -> None:
        raise sa.StepFailed("card declined")


CHECKOUT = sa.Saga(
    "checkout",
    [
        sa.Step("reserve", "shop", "reserve"),
        sa.Step("pay", "shop", "pay", compensable=False),
    ],
    input_type=Cart,
)
ORIGINAL = "step 'pay' failed: card declined"


@pytest.fixture(params=["memory", "sqlite"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryJournal | Path:
    return MemoryJournal() if request.param == "memory" else tmp_path / "shop.db"


def open_runtime(where: MemoryJournal | Path) -> sa.Runtime:
    if isinstance(where, MemoryJournal):
        return sa.Runtime.in_memory(journal=where, participants=[Shop()], sagas=[CHECKOUT])
    return sa.Runtime.open(where, participants=[Shop()], sagas=[CHECKOUT])


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
@pytest.mark.parametrize("restart", [False, True], ids=["live", "after-restart"])
def test_a_resumed_saga_is_compensated_for_its_original_failure(
    where: MemoryJournal | Path, mode: sa.Mode, restart: bool
) -> None:
    rt = open_runtime(where)
    try:
        rt.inject("shop", "reserve", sa.Fault("error"), compensation=True)
        stuck = rt.start(CHECKOUT, Cart("lamp"), mode=mode).result(WAIT)
        assert stuck.status is sa.SagaStatus.STUCK
        assert "compensation of 'reserve' failed" in stuck.reason
        rt.clear_faults()
        if restart:
            rt.close()
            rt = open_runtime(where)
        rt.resume(stuck.saga_id)
        outcome = rt.run(stuck.saga_id).result(WAIT)
    finally:
        rt.close()
    assert outcome.status is sa.SagaStatus.COMPENSATED
    assert outcome.reason == ORIGINAL
    assert outcome.compensated == ("reserve",)
    with open_runtime(where) as again:  # as journaled
        assert again.status(stuck.saga_id).reason == ORIGINAL
        assert again.history(stuck.saga_id)[-1].event.reason == ORIGINAL
