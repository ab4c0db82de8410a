"""Renaming an event in code never renames it in the journal: a journal written before the
rename opens, and its sagas read and resume as before.

The journal event "the step failed for good" is ``StepAbandoned`` in code (apart from the error
users raise, ``sa.StepFailed``), and is stored as ``StepFailed``, its name when older journals
were written. Here a journal is written by hand, byte for byte as before the rename (plain
msgpack maps, not this version's classes), and opened.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import StepAbandoned
from sagactor.persistence.journal import Journal, Record
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal

WAIT = 10.0


class Order(msgspec.Struct, frozen=True):
    item: str


class Shop(sa.Participant[None]):
    name = "shop"

    @sa.action("bill")
    def bill(self, ctx: sa.StepContext, order: Order) -> int:
        return 7

    @sa.compensation("bill")
    def unbill(self, ctx: sa.StepContext, order: Order, done: int) -> None:
        pass

    @sa.action("ship")
    def ship(self, ctx: sa.StepContext, order: Order) -> str:
        raise sa.StepFailed("no stock")

    @sa.compensation("ship")
    def unship(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        pass


SAGA = sa.Saga(
    "order", [sa.Step("bill", "shop", "bill"), sa.Step("ship", "shop", "ship")], input_type=Order
)


def old_records(saga_id: str, *, ended: bool) -> list[Record]:
    """A saga whose second step failed, as a journal before the rename holds it."""
    started = {
        "type": "SagaStarted",
        "saga": "order",
        "version": 1,
        "mode": "orchestration",
        "input": {"item": "book"},
        "digest": "d",
    }
    events = [
        started,
        {"type": "StepStarted", "step": "bill", "attempt": 1, "deadline": 0.0},
        {"type": "StepSucceeded", "step": "bill", "result": 7},
        {"type": "StepStarted", "step": "ship", "attempt": 1, "deadline": 0.0},
        {
            "type": "StepFailed",
            "step": "ship",
            "attempt": 1,
            "reason": "no stock",
            "business": True,
        },
        {"type": "CompensationStarted", "step": "bill", "attempt": 1, "deadline": 0.0},
    ]
    if ended:
        events += [
            {"type": "StepCompensated", "step": "bill"},
            {"type": "SagaCompensated", "reason": "step 'ship' failed: no stock"},
        ]
    stream = f"saga/{saga_id}"
    return [
        Record(
            stream, i, str(e["type"]), msgspec.msgpack.encode(e), 1.0, "", e is events[-1] and ended
        )
        for i, e in enumerate(events, 1)
    ]


@pytest.fixture(params=["memory", "sqlite"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Journal:
    if request.param == "memory":
        return MemoryJournal()
    return SqliteJournal(tmp_path / "old.db")


def test_a_journal_written_with_the_old_name_opens_and_reads(journal: Journal) -> None:
    journal.append_and_wait(old_records("done", ended=True))
    journal.append_and_wait(old_records("open", ended=False))
    with sa.Runtime(journal, participants=[Shop()], sagas=[SAGA]) as rt:
        done = rt.status("done")
        assert done.status is sa.SagaStatus.COMPENSATED
        assert done.reason == "step 'ship' failed: no stock"
        failed = [e for e in rt.history("done") if e.type == "StepFailed"]
        assert len(failed) == 1
        assert isinstance(failed[0].event, StepAbandoned)
        assert failed[0].event.reason == "no stock"
        # The one left in flight is recovered: its compensation runs, and it ends as it would.
        resumed = rt.run("open").result(WAIT)
        assert resumed.status is sa.SagaStatus.COMPENSATED
        assert resumed.compensated == ("bill",)


def test_the_event_is_still_stored_under_its_old_name() -> None:
    with sa.Runtime.in_memory(participants=[Shop()], sagas=[SAGA]) as rt:
        run = rt.start(SAGA, Order("book"))
        assert run.result(WAIT).status is sa.SagaStatus.COMPENSATED
        records = rt.journal.read(f"saga/{run.id}")
    failed = [r for r in records if r.type == "StepFailed"]
    assert len(failed) == 1
    assert msgspec.json.decode(failed[0].data)["type"] == "StepFailed"  # stored as JSON
