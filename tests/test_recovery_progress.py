"""Recovery shows progress: reopening many in-flight sagas logs the counts at INFO on the
``sagactor`` logger every 1,000 sagas loaded, and ``recover=callback`` is given a
``RecoveryProgress`` as it goes and at the end (a failing callback stops nothing)."""

from __future__ import annotations

import logging
import time

import pytest

import sagactor as sa
from sagactor.persistence.journal import Record
from sagactor.persistence.memory import MemoryJournal

from .opsdomain import ORDER, WAIT, Order, participants

IN_FLIGHT = 2_100


def _journal_with_sagas_in_flight() -> MemoryJournal:
    rt = sa.Runtime.in_memory(participants=participants(), sagas=[ORDER])
    journal = rt.journal
    assert isinstance(journal, MemoryJournal)
    rt.inject("ledger", "hold", sa.Fault("delay", seconds=60))  # each saga waits in its 1st step
    runs = rt.start_many(ORDER, [Order(f"o{i}", 1) for i in range(IN_FLIGHT)])
    assert len(runs) == IN_FLIGHT
    journal.flush()
    rt.crash()
    rt.close()
    journal.append_and_wait([Record("saga/garbled", 1, "SagaStarted", b"\xc1", 0.0)])
    return journal


def test_reopening_many_in_flight_sagas_reports_progress(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = _journal_with_sagas_in_flight()
    reports: list[sa.RecoveryProgress] = []
    with caplog.at_level(logging.INFO, logger="sagactor"):
        rt = sa.Runtime(journal, participants=participants(), sagas=[ORDER], recover=reports.append)
    with rt:
        assert [r.loaded for r in reports if not r.done] == [1000, 2000]
        assert reports[-1] == sa.RecoveryProgress(IN_FLIGHT + 1, 1, IN_FLIGHT, done=True)
        loading = [r for r in caplog.records if "loaded so far" in r.getMessage()]
        assert [r.__dict__["loaded"] for r in loading] == [1000, 2000]
        assert all(r.levelno == logging.INFO for r in loading)
        assert any(
            f"{IN_FLIGHT} in-flight saga(s) resumed" in r.getMessage() for r in caplog.records
        )


def test_a_failing_progress_callback_stops_nothing(caplog: pytest.LogCaptureFixture) -> None:
    journal = _journal_with_sagas_in_flight()

    def broken(report: sa.RecoveryProgress) -> None:
        raise RuntimeError("progress bar fell over")

    with sa.Runtime(journal, participants=participants(), sagas=[ORDER], recover=broken) as rt:
        deadline = time.monotonic() + WAIT
        while rt.counts().get("completed", 0) < IN_FLIGHT and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.counts() == {"completed": IN_FLIGHT, "quarantined": 1}
    assert any("progress callback" in r.getMessage() for r in caplog.records)
