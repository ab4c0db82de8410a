"""I/O faults under a running runtime: the error is reported, nothing acknowledged is lost, and
the runtime recovers once the fault is gone (without a restart, and again after one)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

import sagactor as sa
from sagactor.examples.shop import Order, conservation_problems, make_shop, order_saga
from sagactor.persistence.sqlite import SqliteJournal

STOCK = {"sku-1": 500}
BALANCES = {"alice": 100_000}
MONEY = sum(BALANCES.values())
PARTICIPANTS = ("inventory", "payment", "shipping", "notification")


def _open(path: Path) -> sa.Runtime:
    return sa.Runtime.open(path, participants=make_shop(STOCK, BALANCES), sagas=[order_saga])


def _settle(rt: sa.Runtime, saga_ids: list[str]) -> dict[str, sa.Outcome]:
    """Every saga ended; a stuck one (its compensation met the fault) is resumed."""
    outcomes = {}
    for saga_id in saga_ids:
        outcome = rt.run(saga_id).result(30)
        for _ in range(3):
            if outcome.status is not sa.SagaStatus.STUCK:
                break
            rt.resume(saga_id)
            outcome = rt.run(saga_id).result(30)
        outcomes[saga_id] = outcome
    return outcomes


def _books_balance(rt: sa.Runtime, outcomes: dict[str, sa.Outcome]) -> None:
    books: dict[str, Any] = {name: rt.state(name) for name in PARTICIPANTS}
    assert conservation_problems(books, STOCK, MONEY) == []
    for saga_id, outcome in outcomes.items():
        assert outcome.status in (sa.SagaStatus.COMPLETED, sa.SagaStatus.COMPENSATED), outcome
        held = f"{saga_id}/reserve_inventory" in books["inventory"].reserved
        assert held == (outcome.status is sa.SagaStatus.COMPLETED), saga_id


def _start_until_refused(
    rt: sa.Runtime, names: itertools.count[int], limit: int
) -> tuple[list[str], int]:
    acknowledged, refused = [], 0
    for _ in range(limit):
        order = Order(f"o{next(names)}", "alice", "sku-1", 1, 10)
        try:
            acknowledged.append(rt.start(order_saga, order, saga_id=order.id).id)
        except sa.JournalWriteError:
            refused += 1
    return acknowledged, refused


def test_disk_full_is_reported_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    names = itertools.count()
    with _open(path) as rt:
        journal = rt.journal
        assert isinstance(journal, SqliteJournal)
        before, _ = _start_until_refused(rt, names, 20)
        journal.set_max_page_count(1)  # the file cannot grow any more: "disk full"
        during, refused = _start_until_refused(rt, names, 200)
        assert refused > 0, "a full disk must be reported to whoever starts a saga"
        journal.set_max_page_count(1_000_000)
        after, refused_after = _start_until_refused(rt, names, 20)
        assert refused_after == 0
        acknowledged = before + during + after
        _books_balance(rt, _settle(rt, acknowledged))
    with _open(path) as rt:  # and after a restart, the journal says the same
        assert rt.journal.open_streams("saga/") == []
        _books_balance(rt, {saga_id: rt.status(saga_id) for saga_id in acknowledged})


@pytest.mark.parametrize("failures", [1, 5, 40])
def test_an_io_error_at_the_nth_write_is_survived(tmp_path: Path, failures: int) -> None:
    path = tmp_path / f"io{failures}.db"
    names = itertools.count()
    writes = itertools.count()

    def fault(records: Any) -> None:
        if 30 <= next(writes) < 30 + failures:
            raise OSError("injected I/O error")

    with _open(path) as rt:
        rt.journal.fault = fault  # type: ignore[attr-defined]
        acknowledged, refused = _start_until_refused(rt, names, 60)
        outcomes = _settle(rt, acknowledged)
        assert len(acknowledged) + refused == 60
        _books_balance(rt, outcomes)
    with _open(path) as rt:
        assert rt.journal.open_streams("saga/") == []
