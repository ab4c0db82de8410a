"""``durability="relaxed"``: only a saga's start and end wait for the disk, and what a crash
can then lose, exactly as the operations docs say.

The journal here is a disk with a write cache: once ``DISK.holding`` is set, appends stay in
the cache (their callers are not answered) and a crash drops them. The first step's handler
sets it, so everything after the saga's start is still in the cache when the runtime dies.

* Under ``"full"`` durability nothing goes on before its records are on disk: the saga waits
  at its first step, and the third step's external effect never happens before the crash.
* Under ``"relaxed"`` the steps go on: the third step charges a card (an external effect, a
  list outside the journal) while none of it is on disk. After the crash the saga resumes from
  its start; this time the second step refuses, so the saga compensates the first step only:
  the journal never learnt that the third step ran, and its charge is left uncompensated.
* A saga's end waits for the disk in both: its outcome is never reported from the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.journal import DoneCallback, Record, Snapshot
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


class CachedDisk(MemoryJournal):
    """A memory journal with a write cache that a crash loses."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.cache: list[tuple[Sequence[Record], DoneCallback, Snapshot | None]] = []

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        if self.holding:
            self.cache.append((records, on_done, snapshot))
            return
        super().append(records, on_done, snapshot=snapshot)

    def kill(self) -> None:
        self.cache.clear()  # the cache dies with the process
        self.holding = False


DISK = CachedDisk()
HOLD = [True]  # whether the first step starts holding writes in the cache
CHARGES: list[str] = []  # the outside world: charges made by the card step
REFUNDS: list[str] = []


class Order(msgspec.Struct, frozen=True):
    id: str


class Stock(sa.Participant[None]):
    name = "stock"

    def initial_state(self) -> None:
        return None

    @sa.action("reserve")
    def reserve(self, ctx: sa.StepContext, order: Order) -> None:
        DISK.holding = HOLD[0]  # from here on, writes stay in the cache

    @sa.compensation("reserve")
    def release(self, ctx: sa.StepContext, order: Order, done: None) -> None:
        pass


class Fraud(sa.Participant[None]):
    name = "fraud"

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse

    def initial_state(self) -> None:
        return None

    @sa.action("check")
    def check(self, ctx: sa.StepContext, order: Order) -> None:
        if self.refuse:
            raise sa.StepFailed("the card is now flagged")

    @sa.compensation("check")
    def forget(self, ctx: sa.StepContext, order: Order, done: None) -> None:
        pass


class Card(sa.Participant[None]):
    name = "card"

    def initial_state(self) -> None:
        return None

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, order: Order) -> None:
        CHARGES.append(order.id)  # an external effect: outside the journal

    @sa.compensation("charge")
    def refund(self, ctx: sa.StepContext, order: Order, done: None) -> None:
        REFUNDS.append(order.id)


SAGA = sa.Saga(
    "order",
    [
        sa.Step("reserve", participant="stock", action="reserve"),
        sa.Step("check", participant="fraud", action="check"),
        sa.Step("charge", participant="card", action="charge"),
        sa.Step("pay", participant="stock", action="reserve", compensable=False),
    ],
    input_type=Order,
)


def open_runtime(durability: Literal["full", "relaxed"], refuse: bool) -> sa.Runtime:
    participants = [Stock(), Fraud(refuse), Card()]
    return sa.Runtime(DISK, participants=participants, sagas=[SAGA], durability=durability)


@pytest.fixture(autouse=True)
def fresh_world() -> None:
    global DISK
    DISK = CachedDisk()
    HOLD[0] = True
    CHARGES.clear()
    REFUNDS.clear()


def wait_for(condition: Callable[[], object], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("durability", ["full", "relaxed"])
def test_a_crash_loses_what_the_docs_say(durability: Literal["full", "relaxed"]) -> None:
    rt = open_runtime(durability, refuse=False)
    run = rt.start(SAGA, Order("o1"))  # the start waits for the disk in both
    assert next(r.type for r in DISK.read("saga/" + run.id)) == "SagaStarted"
    assert wait_for(lambda: DISK.holding)
    if durability == "relaxed":
        assert wait_for(lambda: CHARGES == ["o1"])  # the saga went on, nothing on disk
        assert wait_for(lambda: len(DISK.cache) >= 6)  # ... up to its end, held in the cache
    else:
        assert not wait_for(lambda: CHARGES, timeout=0.3)  # it waits for the first record
    assert run.status.status is sa.SagaStatus.RUNNING  # the end is never reported from cache
    rt.crash()
    rt.close()
    HOLD[0] = False  # the new process's disk writes through

    # Reopened: the saga resumes from what reached the disk; the fraud check now refuses.
    with open_runtime(durability, refuse=True) as again:
        outcome = again.run(run.id).result(WAIT)
    assert outcome.status is sa.SagaStatus.COMPENSATED
    assert list(outcome.compensated) == ["reserve"]
    if durability == "relaxed":
        assert CHARGES == ["o1"]  # the card was charged before the crash ...
        assert REFUNDS == []  # ... and nothing refunds it: the journal never learnt of it
    else:
        assert CHARGES == []
        assert REFUNDS == []


def test_relaxed_sagas_complete_and_journal_the_same_records() -> None:
    """Relaxed sagas run as usual and nothing is left out: by their end, their records (their
    own and their participants') are the ones a fully durable run writes."""
    HOLD[0] = False
    journaled = {}
    durabilities: tuple[Literal["full", "relaxed"], ...] = ("full", "relaxed")
    for durability in durabilities:
        with open_runtime(durability, refuse=False) as rt:
            runs = rt.start_many(SAGA, [Order(f"{durability}-{n}") for n in range(20)])
            assert all(run.result(WAIT).status is sa.SagaStatus.COMPLETED for run in runs)
            journaled[durability] = sorted(
                (entry.source, entry.type) for run in runs for entry in rt.history(run.id)
            )
    assert journaled["relaxed"] == journaled["full"]
    assert CHARGES
    assert len(CHARGES) == 40


def test_durability_must_be_full_or_relaxed() -> None:
    with pytest.raises(sa.DefinitionError, match="durability"):
        sa.Runtime(MemoryJournal(), durability="fast")  # type: ignore[arg-type]
