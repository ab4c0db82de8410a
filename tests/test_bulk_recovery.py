"""Recovery in bulk: ``Journal.read_open`` finds every in-flight saga in a few range scans, and
says exactly what reading the open streams one by one says (ended, in-flight and quarantined
sagas alike); recovery built on it resumes them all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sagactor as sa
from sagactor.examples.shop import Order, make_shop, order_saga
from sagactor.persistence.journal import Journal, Record
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.recovery import InFlight, find_in_flight, load_saga
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.testing.journal_contract import record

WAIT = 30.0
ENDED, IN_FLIGHT = 6, 9


def _shop() -> list[sa.Participant[Any]]:
    return make_shop({"sku-1": 100}, {"alice": 10_000})


def _fill(rt: sa.Runtime) -> None:
    """Some sagas ended, some held in flight (their shipment delayed) when the runtime dies."""
    for i in range(ENDED):
        order = Order(f"done{i}", "alice", "sku-1", 1, 10)
        assert rt.start(order_saga, order, saga_id=order.id).result(WAIT).status.terminal
    rt.inject("shipping", "create", sa.Fault("delay", seconds=60))
    for i in range(IN_FLIGHT):
        order = Order(f"busy{i}", "alice", "sku-1", 1, 10)
        rt.start(order_saga, order, saga_id=order.id)
    rt.journal.flush()
    rt.crash()
    rt.close()


def _add_undecodable(journal: Journal) -> None:
    journal.append_and_wait([Record("saga/garbled", 1, "SagaStarted", b"\xc1\xc1", 0.0)])


def _one_by_one(journal: Journal, definitions: dict[str, Any]) -> InFlight:
    """The reference: each open stream read on its own."""
    found = InFlight()
    for stream in journal.open_streams("saga/"):
        saga_id = stream.removeprefix("saga/")
        try:
            found.states.append(load_saga(journal, saga_id, journal.read(stream), definitions))
        except sa.SagaQuarantined as error:
            found.quarantined.append(error)
    return found


def _summary(found: InFlight) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    states = [(s.saga_id, str(s.status)) for s in found.states]
    quarantined = [(q.saga_id, type(q.cause).__name__) for q in found.quarantined]
    return states, quarantined


@pytest.fixture(params=["sqlite", "memory"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    if request.param == "memory":
        memory = MemoryJournal()
        _fill(sa.Runtime.in_memory(participants=_shop(), sagas=[order_saga], journal=memory))
        _add_undecodable(memory)
        yield memory
        return
    path = tmp_path / "shop.db"
    _fill(sa.Runtime.open(path, participants=_shop(), sagas=[order_saga]))
    with SqliteJournal(path) as journal:
        _add_undecodable(journal)
        yield journal


@pytest.mark.parametrize("definitions", [{"order": order_saga}, {}], ids=["known", "unknown"])
def test_bulk_scan_says_what_one_by_one_says(journal: Journal, definitions: Any) -> None:
    bulk = find_in_flight(journal, definitions)
    states, quarantined = _summary(bulk)
    assert (states, quarantined) == _summary(_one_by_one(journal, definitions))
    in_flight = [f"busy{i}" for i in range(IN_FLIGHT)]
    if definitions:
        assert [saga_id for saga_id, _ in states] == sorted(in_flight)
        assert quarantined == [("garbled", "JournalCorrupt")]
    else:  # no definition registered: every one of them is quarantined, none is lost
        assert states == []
        assert sorted(saga_id for saga_id, _ in quarantined) == sorted([*in_flight, "garbled"])


def test_read_open_equals_the_streams_read_one_by_one(journal: Journal) -> None:
    fallback = list(Journal.read_open(journal, "saga/"))  # the base class: stream by stream
    assert list(journal.read_open("saga/")) == fallback
    assert [stream for stream, _ in fallback] == journal.open_streams("saga/")
    assert all(records == journal.read(stream) for stream, records in fallback)
    assert not any(stream.startswith("saga/done") for stream, _ in fallback)


def test_read_open_pages_and_keeps_to_its_prefix(tmp_path: Path) -> None:
    with SqliteJournal(tmp_path / "j.db") as journal:
        journal.open_chunk = 7  # type: ignore[attr-defined]
        batch = [
            record(f"saga/{i:03d}", seq, final=i % 3 == 0 and seq == 2)
            for i in range(50)
            for seq in (1, 2)
        ]
        journal.append_and_wait([*batch, record("sagb", 1), record("saga", 1), record("s", 1)])
        got = list(journal.read_open("saga/"))
        assert got == list(Journal.read_open(journal, "saga/"))
        assert [stream for stream, _ in got] == [f"saga/{i:03d}" for i in range(50) if i % 3]
        assert [len(records) for _, records in got] == [2] * len(got)
        assert [s for s, _ in journal.read_open("")] == journal.open_streams("")


def test_reopen_resumes_every_in_flight_saga(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    _fill(sa.Runtime.open(path, participants=_shop(), sagas=[order_saga]))
    with sa.Runtime.open(path, participants=_shop(), sagas=[order_saga]) as rt:
        outcomes = [rt.run(f"busy{i}").result(WAIT) for i in range(IN_FLIGHT)]
        assert all(o.status is sa.SagaStatus.COMPLETED for o in outcomes)
        assert rt.journal.open_streams("saga/") == []
