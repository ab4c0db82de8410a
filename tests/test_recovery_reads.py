"""What recovering many sagas and waiting on them reads: a handle (``rt.run(id)``) costs no read
of the saga's stream, so waiting on each recovered saga loads it once, not twice; the counts are
of journal calls, not of time."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import sagactor as sa
from sagactor.persistence.journal import Record
from sagactor.persistence.memory import MemoryJournal

from .tally import TWO_STEPS, Job, Tally, participants

WAIT = 30.0
IN_FLIGHT = 40


class ReadCounting(MemoryJournal):
    """A memory journal that counts the reads of saga streams made by one thread (the test's:
    the runtime's own threads read too, for reasons of their own)."""

    def __init__(self) -> None:
        super().__init__()
        self.reader: int | None = None
        self.reads: Counter[str] = Counter()
        self.lookups: Counter[str] = Counter()

    def _mine(self, stream: str) -> bool:
        return stream.startswith("saga/") and threading.get_ident() == self.reader

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        if self._mine(stream):
            self.reads[stream] += 1
        return super().read(stream, after, limit)

    def last_seq(self, stream: str) -> int:
        if self._mine(stream):
            self.lookups[stream] += 1
        return super().last_seq(stream)


def _crashed_in_flight(journal: ReadCounting) -> list[str]:
    """``IN_FLIGHT`` sagas held at their first step by a delay fault, then the runtime dies."""
    rt = sa.Runtime.in_memory(participants=participants(), sagas=[TWO_STEPS], journal=journal)
    rt.inject("one", "work", sa.Fault("delay", seconds=3600))
    runs = rt.start_many(TWO_STEPS, [Job(i) for i in range(IN_FLIGHT)])
    journal.flush()
    rt.crash()
    rt.close()
    return [run.id for run in runs]


@pytest.mark.parametrize("recover", [True, "background"])
def test_waiting_on_each_recovered_saga_reads_it_once(recover: Any) -> None:
    journal = ReadCounting()
    ids = _crashed_in_flight(journal)
    with sa.Runtime(journal, participants=participants(), sagas=[TWO_STEPS], recover=recover) as rt:
        rt.wait_recovered(timeout=WAIT)
        journal.reader = threading.get_ident()
        handles = [rt.run(saga_id) for saga_id in ids]
        assert journal.reads == Counter()  # a handle loads nothing
        assert journal.lookups == Counter(f"saga/{saga_id}" for saga_id in ids)
        for run in handles:
            assert run.result(timeout=WAIT).ok
        assert max(journal.reads.values()) <= 1  # one load per saga, whatever its progress
        assert rt.state("one") == Tally(IN_FLIGHT)  # each step's effect once
        assert rt.state("two") == Tally(IN_FLIGHT)


def test_a_handle_on_an_unknown_saga_is_refused_and_a_quarantined_one_is_not() -> None:
    journal = ReadCounting()
    ids = _crashed_in_flight(journal)
    # Reopened without the saga's definition: every in-flight saga is quarantined.
    with sa.Runtime(journal, participants=participants(), sagas=[]) as rt:
        with pytest.raises(sa.UnknownSaga):
            rt.run("nobody")
        run = rt.run(ids[0])
        with pytest.raises(sa.SagaQuarantined):
            run.result(timeout=WAIT)


def test_a_handle_asked_for_after_a_crash_says_it_crashed(tmp_path: Path) -> None:
    rt = sa.Runtime.open(tmp_path / "j.db", participants=participants(), sagas=[TWO_STEPS])
    saga_id = rt.start(TWO_STEPS, Job(1)).id
    rt.crash()  # the file is released: the lookup cannot be made
    try:
        with pytest.raises(sa.RuntimeCrashed):
            rt.run(saga_id)
    finally:
        rt.close()
