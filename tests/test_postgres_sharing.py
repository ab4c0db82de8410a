"""Several processes sharing one PostgreSQL database's sagas by partition (``sa.Partitioned``).

Two members are opened in this process (each with its own sessions, membership row and
partitions, as two processes would have): they split the partitions, each runs only the sagas
of the partitions it holds, starts and reads work from either, a member that leaves gives its
partitions to the other, and signals and operator actions reach a saga held by the other one
through the database (or fail with ``NotActive`` when nobody answers, having done nothing).
The multi-process kill soak is in ``test_postgres_soak.py``."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

import sagactor as sa

from .warehouse import ITEMS, Ledger, participants, shipment, shipping

LEASE = 1.5
PARTITIONS = 4


class Approval(msgspec.Struct, frozen=True):
    by: str


class Desk(sa.Participant[list[str]]):
    name = "desk"

    def initial_state(self) -> list[str]:
        return []

    @sa.action("file")
    def file(self, ctx: sa.StepContext, order: str) -> str:
        ctx.record(Approval(order))
        return order

    @sa.compensation("file")
    def unfile(self, ctx: sa.StepContext, order: str, done: str) -> None:
        ctx.record(Approval(f"-{order}"))

    @sa.action("note")
    def note(self, ctx: sa.StepContext, order: str) -> None:
        approval = ctx.results.get("approval")
        assert isinstance(approval, Approval)
        ctx.record(Approval(f"approved by {approval.by}"))

    @sa.evolve
    def _filed(self, state: list[str], change: Approval) -> None:
        state.append(change.by)


approving = sa.Saga(
    "approving",
    [
        sa.Step("file", "desk", "file"),
        sa.WaitFor("approval", type=Approval),
        sa.Step("note", "desk", "note", compensable=False),
    ],
    input_type=str,
)


def _members() -> list[sa.Participant[object]]:
    return [*participants(), Desk()]


def _open(url: str) -> sa.Partitioned:
    return sa.Partitioned.open(
        url, participants=_members, sagas=[shipping, approving], partitions=PARTITIONS, lease=LEASE
    )


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[sa.Partitioned, sa.Partitioned]]:
    first = _open(pg_url)
    assert first.held == list(range(PARTITIONS))  # alone: every partition
    second = _open(pg_url)
    try:
        assert second.wait_holding(PARTITIONS // 2, 10 * LEASE), second.held
        assert first.wait_holding(PARTITIONS // 2, 10 * LEASE), first.held
        yield first, second
    finally:
        second.close()
        first.close()


def test_two_processes_split_the_partitions_and_run_only_their_own(
    pair: tuple[sa.Partitioned, sa.Partitioned],
) -> None:
    first, second = pair
    assert sorted(first.held + second.held) == list(range(PARTITIONS))
    orders = [shipment(number, "p-") for number in range(24)]
    runs = first.start_many(shipping, orders, saga_ids=[o.id for o in orders])
    assert {first.partition_of(o.id) for o in orders} == set(range(PARTITIONS))
    for order in orders:
        outcome = second.result(order.id, 30)  # read from either, wherever it ran
        failing = order.to == "atlantis"
        assert outcome.status is (sa.SagaStatus.COMPENSATED if failing else sa.SagaStatus.COMPLETED)
    assert [run.id for run in runs] == [o.id for o in orders]
    for partition in range(PARTITIONS):
        holder, other = (first, second) if partition in first.held else (second, first)
        ledger: Ledger = holder.state("warehouse", partition)
        mine = {o.id for o in orders if holder.partition_of(o.id) == partition}
        assert {key.split("/")[0] for key in ledger.applied} == mine  # its own sagas only
        assert ledger.level + sum(ledger.held.values()) == ITEMS
        with pytest.raises(sa.NotActive):
            other.state("warehouse", partition)  # the other one holds no state of it
    # Without an id: started in a partition this process holds, no forwarding.
    run = second.start(shipping, shipment(1))
    assert second.partition_of(run.id) in second.held
    assert second.result(run.id, 30).status is sa.SagaStatus.COMPLETED


def test_a_member_that_leaves_gives_its_partitions_to_the_other(
    pair: tuple[sa.Partitioned, sa.Partitioned],
) -> None:
    first, second = pair
    saga_id = first.id_in(second.held[0])
    order = shipment(5)
    before = second.start(shipping, shipment(6), saga_id=first.id_in(second.held[1]))
    second.close()
    assert first.wait_holding(PARTITIONS, 10 * LEASE), first.held
    assert first.start(shipping, order, saga_id=saga_id).result(30).ok
    assert first.result(saga_id, 30).ok
    assert first.result(before.id, 30).ok  # started there, ended here if it had to


def test_signals_and_operator_actions_reach_a_saga_held_by_the_other_process(
    pair: tuple[sa.Partitioned, sa.Partitioned],
) -> None:
    first, second = pair
    theirs = second.held[0]
    waiting = [first.id_in(theirs) for _ in range(3)]
    for saga_id in waiting:
        first.start(approving, saga_id, saga_id=saga_id)  # forwarded to the holder
    assert first.runtime(theirs).role == "standby"
    assert first.signal(waiting[0], "approval", Approval("ops"), signal_id="sig-1") is True
    assert first.signal(waiting[0], "approval", Approval("ops"), signal_id="sig-1") is False
    assert first.result(waiting[0], 30).status is sa.SagaStatus.COMPLETED
    assert "approved by ops" in second.state("desk", theirs)
    first.cancel(waiting[1], "not wanted")
    cancelled = first.result(waiting[1], 30)
    assert cancelled.status is sa.SagaStatus.COMPENSATED
    with pytest.raises(sa.UnknownSaga):
        first.signal(first.id_in(theirs), "approval", Approval("ops"))
    with pytest.raises(sa.SignalRefused):
        first.signal(waiting[1], "approval", Approval("late"))  # it ended

    # Nobody answers for the holder (its answering thread stopped): refused, nothing done.
    second._asker.stop()
    first.ask_timeout = 0.5
    with pytest.raises(sa.NotActive, match="nothing was done"):
        first.signal(waiting[2], "approval", Approval("nobody"))
    assert first.status(waiting[2]).status is sa.SagaStatus.RUNNING
    assert second.signal(waiting[2], "approval", Approval("local")) is True  # held there
    assert first.result(waiting[2], 30).ok
