"""Native choreography: the shop's workflow emerging from @on subscriptions (fan-out, join,
backwards compensation), its checks, and its behaviour across crashes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.examples import shop_events
from sagactor.examples.shop import (
    Inventory,
    Notification,
    Order,
    Payment,
    Shipping,
    conservation_problems,
    make_shop,
    order_choreography,
    order_saga,
)
from sagactor.examples.shop_events import OrderCancelled, OrderCreated
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.sagas.definition import Choreography

STOCK = {"sku-1": 10}
BALANCES = {"alice": 1_000, "bob": 5}
MONEY = sum(BALANCES.values())
ORDERS = [
    Order("ok", "alice", "sku-1", 2, 300),
    Order("poor", "bob", "sku-1", 2, 300),  # payment fails
    Order("greedy", "alice", "sku-1", 50, 1),  # inventory fails
    Order("homeless", "alice", "sku-1", 1, 1, address=" "),  # shipping cancels after the join
]
EXPECTED = {
    "ok": sa.SagaStatus.COMPLETED,
    "poor": sa.SagaStatus.COMPENSATED,
    "greedy": sa.SagaStatus.COMPENSATED,
    "homeless": sa.SagaStatus.COMPENSATED,
}


def _shop_runtime(journal: Any = None) -> sa.Runtime:
    return sa.Runtime(
        journal if journal is not None else MemoryJournal(),
        participants=make_shop(STOCK, BALANCES),
        sagas=[order_saga, order_choreography],
    )


def _books(rt: sa.Runtime) -> dict[str, Any]:
    return {name: rt.state(name) for name in rt.participants}


def test_the_shop_choreography_completes_or_undoes_every_order() -> None:
    with _shop_runtime() as rt:
        for order in ORDERS:
            outcome = rt.start(order_choreography, OrderCreated(order), saga_id=order.id).result(5)
            assert outcome.status is EXPECTED[order.id], (order.id, outcome)
        books = _books(rt)
        assert conservation_problems(books, STOCK, MONEY) == []
        assert set(books["inventory"].reserved) == {"ok/reserve_inventory"}
        assert set(books["payment"].charges) == {"ok/charge_payment"}
        assert set(books["shipping"].shipments) == {"ok/create_shipment"}
        assert books["shipping"].joins == {}
        assert set(books["notification"].sent) == {"ok/notify"}


def test_order_created_fans_out_and_shipping_joins() -> None:
    with _shop_runtime() as rt:
        rt.start(order_choreography, OrderCreated(ORDERS[0]), saga_id="ok").result(5)
        timeline = [(e.source, e.type) for e in rt.history("ok") if e.type[0].isupper()]
    events = set(shop_events.__all__)
    published = [(source, kind) for source, kind in timeline if kind in events]
    assert published[0] == ("start", "OrderCreated")
    # Both inventory and payment reacted to OrderCreated (fan-out) ...
    publishers = {kind: source for source, kind in published}
    assert publishers["InventoryReserved"] == "inventory"
    assert publishers["PaymentProcessed"] == "payment"
    assert publishers["OrderShipped"] == "shipping"
    # ... and shipping shipped only after both answered (the join).
    order = [kind for _, kind in published]
    assert order.index("OrderShipped") > max(
        order.index("InventoryReserved"), order.index("PaymentProcessed")
    )
    assert order[-1] == "CustomerNotified"


def test_a_cancellation_is_undone_backwards_inventory_then_payment() -> None:
    with _shop_runtime() as rt:
        outcome = rt.start(order_choreography, OrderCreated(ORDERS[3]), saga_id="homeless").result(
            5
        )
        assert outcome.status is sa.SagaStatus.COMPENSATED
        changes = [e.type for e in rt.history("homeless") if e.source in ("inventory", "payment")]
    assert changes.index("StockReleased") < changes.index("Refunded")


def test_choreography_and_orchestration_leave_the_same_books() -> None:
    books = []
    for style in ("orchestration", "native"):
        with _shop_runtime() as rt:
            for order in ORDERS:
                if style == "native":
                    run = rt.start(order_choreography, OrderCreated(order), saga_id=order.id)
                else:
                    run = rt.start(order_saga, order, saga_id=order.id)
                assert run.result(5).status is EXPECTED[order.id]
            state = _books(rt)
            books.append(
                (
                    state["inventory"].stock,
                    state["inventory"].reserved,
                    state["payment"].balances,
                    state["payment"].charges,
                    state["shipping"].shipments,
                )
            )
    assert books[0] == books[1]


def test_same_id_same_event_is_the_same_run_and_other_input_conflicts() -> None:
    with _shop_runtime() as rt:
        first = rt.start(order_choreography, OrderCreated(ORDERS[0]), saga_id="x")
        again = rt.start(order_choreography, OrderCreated(ORDERS[0]), saga_id="x")
        assert again.id == first.id
        with pytest.raises(sa.SagaIdConflict):
            rt.start(order_choreography, OrderCreated(ORDERS[1]), saga_id="x")
        with pytest.raises(sa.DefinitionError, match="starts with a OrderCreated"):
            rt.start(order_choreography, ORDERS[0])
        assert first.result(5).status is sa.SagaStatus.COMPLETED


# -- the checks --------------------------------------------------------------------------------


class ForgetfulInventory(Inventory):
    """Reserves on OrderCreated but does not react to OrderCancelled: nothing undoes its work."""

    on_cancel = None  # type: ignore[assignment]


class Ping(msgspec.Struct, frozen=True):
    n: int


class Pong(msgspec.Struct, frozen=True):
    n: int


class Done(msgspec.Struct, frozen=True):
    n: int


class Orphan(msgspec.Struct, frozen=True):
    n: int


class Echo(sa.Participant[None]):
    name = "echo"

    @sa.on(Ping, emits=(Pong, Done, Orphan))
    def ping(self, ctx: sa.StepContext, event: Ping) -> None:
        ctx.publish(Done(event.n) if event.n > 2 else Pong(event.n + 1))

    @sa.on(Pong, emits=(Ping,))
    def pong(self, ctx: sa.StepContext, event: Pong) -> None:
        ctx.publish(Ping(event.n))


class Liar(sa.Participant[None]):
    name = "liar"

    @sa.on(Ping, emits=(Done,))
    def ping(self, ctx: sa.StepContext, event: Ping) -> None:
        ctx.publish(Pong(event.n))  # not declared


def test_a_missing_compensation_handler_is_reported_at_registration() -> None:
    participants: list[sa.Participant[Any]] = [
        ForgetfulInventory(STOCK),
        Payment(BALANCES),
        Shipping(),
        Notification(),
    ]
    with (
        sa.Runtime.in_memory(participants=participants) as rt,
        pytest.raises(sa.DefinitionError) as caught,
    ):
        rt.define(order_choreography)
    message = str(caught.value)
    assert "'inventory' reacts to OrderCreated" in message
    assert "no compensation path" in message
    assert "OrderCancelled" in message  # the failure it should react to


def test_unhandled_events_and_cycles_are_reported() -> None:
    loop = Choreography("loop", start=Ping, completed=(Done,))
    with (
        sa.Runtime.in_memory(participants=[Echo()]) as rt,
        pytest.raises(sa.DefinitionError) as caught,
    ):
        rt.define(loop)
    message = str(caught.value)
    assert "event Orphan (published by echo) is handled by no participant" in message
    assert "cycle: Ping -> Pong -> Ping" in message


def test_publishing_an_undeclared_event_leaves_the_saga_stuck_with_a_reason() -> None:
    flow = Choreography("liar", start=Ping, completed=(Done,))
    with sa.Runtime.in_memory(participants=[Liar()], sagas=[flow]) as rt:
        outcome = rt.start(flow, Ping(1)).result(5)
    assert outcome.status is sa.SagaStatus.STUCK
    assert "published Pong, not in its @on(emits=...)" in outcome.reason


# -- crashes -----------------------------------------------------------------------------------


def _run_all(rt: sa.Runtime) -> list[str]:
    acknowledged = []
    for order in ORDERS:
        try:
            acknowledged.append(
                rt.start(order_choreography, OrderCreated(order), saga_id=order.id).id
            )
        except sa.RuntimeCrashed:
            break
    return acknowledged


def _check(rt: sa.Runtime, acknowledged: list[str]) -> None:
    for saga_id in acknowledged:
        assert rt.run(saga_id).result(10).status is EXPECTED[saga_id], saga_id
    # A start the crash cut short may still have been journaled: recovery finishes it too.
    for saga_id in rt.saga_ids():
        assert rt.run(saga_id).result(10).status is EXPECTED[saga_id], saga_id
    books = _books(rt)
    assert conservation_problems(books, STOCK, MONEY) == []
    assert books["shipping"].joins == {}
    held = set(books["inventory"].reserved)
    assert held <= {"ok/reserve_inventory"}
    if "ok" in acknowledged:
        assert held == {"ok/reserve_inventory"}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_every_crash_point_and_pass_in_native_choreography(kind: str, tmp_path: Path) -> None:
    with _shop_runtime() as rt:
        _check(rt, _run_all(rt))
        hits = Counter(rt.crash_plan.hits)
    points = [sa.CrashPoint.AFTER_COMMIT, sa.CrashPoint.BEFORE_DISPATCH]
    for point in points:
        assert hits[point] > 0, f"{point} never passed"
        for hit in range(1, hits[point] + 1):
            memory = MemoryJournal()
            path = tmp_path / f"{point}-{hit}.db"

            def journal(memory: MemoryJournal = memory, path: Path = path) -> Any:
                return memory if kind == "memory" else SqliteJournal(path, synchronous="normal")

            with _shop_runtime(journal()) as rt:
                rt.arm(point, hit)
                acknowledged = _run_all(rt)
                assert rt.wait_until_crashed(10)
            with _shop_runtime(journal()) as rt:
                _check(rt, acknowledged)


def test_a_republished_outbox_is_deduplicated() -> None:
    journal = MemoryJournal()
    with _shop_runtime(journal) as rt:
        rt.start(order_choreography, OrderCreated(ORDERS[0]), saga_id="ok").result(5)
        dispatched = len(rt.history("ok"))
    # Recovering a finished saga re-delivers nothing; replaying its events by hand changes nothing.
    with _shop_runtime(journal) as rt:
        assert rt.recover() == []
        assert len(rt.history("ok")) == dispatched
        assert conservation_problems(_books(rt), STOCK, MONEY) == []


def test_history_shows_choreographed_events_typed() -> None:
    with _shop_runtime() as rt:
        rt.start(order_choreography, OrderCreated(ORDERS[3]), saga_id="homeless").result(5)
        cancelled = [e for e in rt.history("homeless") if e.type == "OrderCancelled"]
    assert len(cancelled) == 1
    assert isinstance(cancelled[0].event, OrderCancelled)
    assert cancelled[0].source == "shipping"
    assert cancelled[0].event.reason == "no shipping address"
