"""A finished saga is read from its own events: no definition needed (DESIGN 5.7, 5.8).

Before, a saga that finished under ``version=1`` could not be read once the app registered
``version=2`` (``status`` and ``run`` raised ``IncompatibleDefinition``), nor once its definition
was dropped; starting its id again never returned; and ``SagaRun(rt, "nope").result()`` waited
forever. Now its status, outcome and history stay readable under any definitions, reusing its id
for another version or another saga is a ``SagaIdConflict``, and an unknown id is
``UnknownSaga`` at once. In memory and in SQLite, in every mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


class Order(msgspec.Struct, frozen=True):
    item: str
    fail: bool = False


class OrderPlaced(msgspec.Struct, frozen=True):
    item: str


class OrderShipped(msgspec.Struct, frozen=True):
    item: str


class Shop(sa.Participant[None]):
    name = "shop"

    @sa.action("ship")
    def ship(self, ctx: sa.StepContext, order: Order) -> str:
        if order.fail:
            raise sa.StepFailed("no stock")
        return f"parcel:{order.item}"

    @sa.compensation("ship")
    def unship(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        pass

    @sa.action("bill")
    def bill(self, ctx: sa.StepContext, order: Order) -> int:
        return 7

    @sa.compensation("bill")
    def unbill(self, ctx: sa.StepContext, order: Order, done: int) -> None:
        pass

    @sa.on(OrderPlaced, emits=(OrderShipped,))
    def placed(self, ctx: sa.StepContext, event: OrderPlaced) -> None:
        ctx.publish(OrderShipped(event.item))


def order_saga(version: int) -> sa.Saga:
    steps = [sa.Step("bill", "shop", "bill"), sa.Step("ship", "shop", "ship")]
    if version > 1:
        steps.append(sa.Step("ship_again", "shop", "ship"))
    return sa.Saga("order", steps, version=version, input_type=Order)


V1, V2 = order_saga(1), order_saga(2)
NATIVE_V1 = sa.Choreography("placing", start=OrderPlaced, completed=(OrderShipped,))
NATIVE_V2 = sa.Choreography("placing", start=OrderPlaced, completed=(OrderShipped,), version=2)
OTHER = sa.Saga("other", [sa.Step("ship", "shop", "ship")], input_type=Order)


@pytest.fixture(params=["memory", "sqlite"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryJournal | Path:
    return MemoryJournal() if request.param == "memory" else tmp_path / "shop.db"


def open_runtime(where: MemoryJournal | Path, sagas: list[Any]) -> sa.Runtime:
    if isinstance(where, MemoryJournal):
        return sa.Runtime.in_memory(journal=where, participants=[Shop()], sagas=sagas)
    return sa.Runtime.open(where, participants=[Shop()], sagas=sagas)


def finish_under_v1(where: MemoryJournal | Path) -> dict[str, sa.Outcome]:
    """Run sagas to their end under version 1 (completed and compensated, every mode)."""
    with open_runtime(where, [V1, NATIVE_V1]) as rt:
        runs = {
            "orch-ok": rt.start(V1, Order("a"), saga_id="orch-ok"),
            "orch-undone": rt.start(V1, Order("b", fail=True), saga_id="orch-undone"),
            "chor-ok": rt.start(V1, Order("c"), saga_id="chor-ok", mode="choreography"),
            "native-ok": rt.start(NATIVE_V1, OrderPlaced("d"), saga_id="native-ok"),
        }
        return {saga_id: run.result(WAIT) for saga_id, run in runs.items()}


@pytest.mark.parametrize("registered", ["version-2", "none"])
def test_a_finished_saga_reads_the_same_under_any_definitions(
    where: MemoryJournal | Path, registered: str
) -> None:
    before = finish_under_v1(where)
    assert before["orch-ok"].results == {"bill": 7, "ship": "parcel:a"}
    assert before["orch-undone"].status is sa.SagaStatus.COMPENSATED
    assert before["orch-undone"].compensated == ("bill",)
    assert before["native-ok"].results == {"events": ["OrderPlaced", "OrderShipped"]}
    sagas = [V2, NATIVE_V2] if registered == "version-2" else []
    with open_runtime(where, sagas) as rt:
        for saga_id, outcome in before.items():
            assert rt.status(saga_id) == outcome
            assert rt.run(saga_id).result(WAIT) == outcome
            assert rt.history(saga_id)[-1].type in ("SagaCompleted", "SagaCompensated")


@pytest.mark.parametrize("registered", ["version-2", "none"])
def test_reusing_the_id_of_a_saga_finished_under_another_definition_is_a_conflict(
    where: MemoryJournal | Path, registered: str
) -> None:
    finish_under_v1(where)
    sagas = [V2, NATIVE_V2, OTHER] if registered == "version-2" else [OTHER]
    with open_runtime(where, sagas) as rt:
        reused: list[tuple[str, str, sa.Mode]] = [
            ("orch-ok", "a", "orchestration"),
            ("chor-ok", "c", "choreography"),
        ]
        for saga_id, order, mode in reused:
            if registered == "version-2":  # the same input: only the version differs
                with pytest.raises(sa.SagaIdConflict, match="version 1"):
                    rt.start(V2, Order(order), saga_id=saga_id, mode=mode)
            with pytest.raises(sa.SagaIdConflict, match="'order'"):
                rt.start(OTHER, Order(order), saga_id=saga_id)
        if registered == "version-2":
            with pytest.raises(sa.SagaIdConflict, match="version 1"):
                rt.start(NATIVE_V2, OrderPlaced("d"), saga_id="native-ok")
        # The same definition and input still give the existing run back.
        rt.define(V1)
        assert rt.start(V1, Order("a"), saga_id="orch-ok").result(WAIT).ok


def test_a_run_of_an_unknown_id_says_so_at_once(where: MemoryJournal | Path) -> None:
    with open_runtime(where, [V1]) as rt:
        with pytest.raises(sa.UnknownSaga, match="nope"):
            sa.SagaRun(rt, "nope").result()
        with pytest.raises(sa.UnknownSaga):
            rt.run("nope")

        async def wait() -> None:
            with pytest.raises(sa.UnknownSaga):
                await sa.SagaRun(rt, "nope")

        anyio.run(wait)
        assert rt.start(V1, Order("a"), saga_id="yes").result(WAIT).ok
