"""Recovery in bulk and ``Journal.stats`` on PostgreSQL: ``read_open`` says, in a few scans, what
reading the open streams one by one says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sagactor.persistence.journal import Journal, JournalStats, StreamConflict
from sagactor.persistence.postgres import PostgresJournal
from sagactor.testing.journal_contract import record


@pytest.fixture
def journal(pg_url: str) -> Iterator[PostgresJournal]:
    journal = PostgresJournal(pg_url)
    yield journal
    journal.close()


def test_read_open_pages_and_keeps_to_its_prefix(journal: PostgresJournal) -> None:
    journal.open_chunk = 7
    batch = [
        record(f"saga/{i:03d}", seq, final=i % 3 == 0 and seq == 2)
        for i in range(50)
        for seq in (1, 2)
    ]
    journal.append_and_wait([*batch, record("sagb", 1), record("saga", 1), record("s", 1)])
    got = list(journal.read_open("saga/"))
    assert got == list(Journal.read_open(journal, "saga/"))  # the base class: one by one
    assert [stream for stream, _ in got] == [f"saga/{i:03d}" for i in range(50) if i % 3]
    assert all(records == journal.read(stream) for stream, records in got)
    assert [stream for stream, _ in journal.read_open("")] == journal.open_streams("")


def test_stats_count_what_was_committed(journal: PostgresJournal) -> None:
    journal.append_and_wait([record("s", 1), record("s", 2)])
    journal.append_and_wait([record("t", 1)])
    with pytest.raises(StreamConflict):
        journal.append_and_wait([record("t", 1)])
    # The refused batch's group still committed its (empty) transaction.
    assert journal.stats == JournalStats(commits=3, batches=2, rows=3, syncs=3)
