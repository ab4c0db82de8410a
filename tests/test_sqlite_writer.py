"""The SQLite writer's hot path, from the journal's user's side: sequence numbers checked in
memory (and what memory cannot know, checked by the file), state rebuilt after a failed group,
the counts of ``Journal.stats``, and a journal reopened after a kill."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sagactor.errors import JournalWriteError
from sagactor.persistence.journal import (
    DoneCallback,
    Journal,
    JournalStats,
    Record,
    Snapshot,
    StreamConflict,
)
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.testing.journal_contract import record

ROOT = Path(__file__).resolve().parents[1]
WAIT = 30.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(path: Path) -> Iterator[SqliteJournal]:
    journal = SqliteJournal(path)
    yield journal
    journal.fault = None
    journal.close()


class Group:
    """Holds the writer at its first batch, so that the appends made meanwhile form one group;
    optionally fails the ``fail_at``-th batch after the held one with an I/O error."""

    def __init__(self, journal: SqliteJournal, *, fail_at: int | None = None) -> None:
        self.journal = journal
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.fail_at = fail_at
        self.seen = 0
        self.results: dict[str, BaseException | None] = {}
        self.order: list[str] = []
        self._all = threading.Event()
        self._expected = 0
        journal.fault = self._fault
        journal.append([], self.callback("hold"))
        assert self.entered.wait(WAIT)

    def _fault(self, records: Sequence[Record]) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.opened.wait(WAIT)
            return
        self.seen += 1
        if self.seen == self.fail_at:
            raise sqlite3.OperationalError("disk I/O error")

    def callback(self, tag: str) -> DoneCallback:
        self._expected += 1

        def on_done(error: BaseException | None) -> None:
            self.results[tag] = error
            self.order.append(tag)
            if len(self.order) == self._expected:
                self._all.set()

        return on_done

    def append(self, tag: str, records: list[Record], snapshot: Snapshot | None = None) -> None:
        self.journal.append(records, self.callback(tag), snapshot=snapshot)

    def release(self) -> dict[str, BaseException | None]:
        self.opened.set()
        assert self._all.wait(WAIT), f"{len(self.order)} of {self._expected} callbacks ran"
        self.journal.fault = None
        return self.results


def seqs(journal: Journal, stream: str) -> list[int]:
    return [r.seq for r in journal.read(stream)]


# -- sequence numbers checked in memory ----------------------------------------------------------


def test_a_conflicting_append_in_a_group_fails_alone(journal: SqliteJournal) -> None:
    journal.append_and_wait([record("s", 1)])
    group = Group(journal)
    group.append("s2", [record("s", 2)])
    group.append("again s2", [record("s", 2), record("t", 1)])  # s2 is taken, by the one before
    group.append("t1", [record("t", 1)])  # the refused batch took nothing of t
    group.append("s3", [record("s", 3)], Snapshot("s", 3, b"snap"))
    got = group.release()
    assert group.order == ["hold", "s2", "again s2", "t1", "s3"]
    assert isinstance(got["again s2"], StreamConflict)
    assert (got["again s2"].stream, got["again s2"].seq) == ("s", 2)
    assert [tag for tag, error in got.items() if error is not None] == ["again s2"]
    assert seqs(journal, "s") == [1, 2, 3]
    assert seqs(journal, "t") == [1]
    assert journal.load_snapshot("s") == Snapshot("s", 3, b"snap")


def test_a_gap_is_refused(journal: SqliteJournal) -> None:
    journal.append_and_wait([record("s", 1)])
    with pytest.raises(StreamConflict):
        journal.append_and_wait([record("s", 3)])
    journal.append_and_wait([record("s", 2)])
    assert seqs(journal, "s") == [1, 2]


def test_streams_written_before_this_object_are_checked_too(path: Path) -> None:
    with SqliteJournal(path) as first:
        first.append_and_wait([record("old", 1), record("old", 2)])
        first.append_and_wait([record("ended", 1, final=True)])
    with SqliteJournal(path) as journal:
        group = Group(journal)
        group.append("old restarted", [record("new", 1), record("old", 1)])  # old exists
        group.append("new1", [record("new", 1)])
        group.append("old skips", [record("old", 4)])
        group.append("old3", [record("old", 3)])
        group.append("ended again", [record("ended", 1)])
        group.append("ended2", [record("ended", 2)])
        got = group.release()
        refused = {tag for tag, error in got.items() if isinstance(error, StreamConflict)}
        assert refused == {"old restarted", "old skips", "ended again"}
        assert all(got[tag] is None for tag in ("new1", "old3", "ended2"))
        assert seqs(journal, "old") == [1, 2, 3]
        assert seqs(journal, "new") == [1]
        assert seqs(journal, "ended") == [1, 2]
        assert journal.open_streams("") == ["ended", "new", "old"]


def test_many_rows_in_one_group(journal: SqliteJournal) -> None:
    group = Group(journal)
    for i in range(700):  # more rows than one statement takes
        group.append(f"b{i}", [record(f"saga/{i:04d}", 1), record(f"saga/{i:04d}", 2)])
    got = group.release()
    assert all(error is None for error in got.values())
    assert len(journal.read_all()) == 1400
    assert [r.position for r in journal.read_all()] == list(range(1, 1401))


# -- after a failed group, memory is not trusted -------------------------------------------------


def test_rolled_back_group_is_forgotten(journal: SqliteJournal) -> None:
    journal.append_and_wait([record("s", 1)])
    group = Group(journal, fail_at=2)
    group.append("s2", [record("s", 2)])
    group.append("s3", [record("s", 3)])  # the I/O error: the whole group is rolled back
    got = group.release()
    assert all(isinstance(got[tag], JournalWriteError) for tag in ("s2", "s3"))
    assert seqs(journal, "s") == [1]
    with pytest.raises(StreamConflict):
        journal.append_and_wait([record("s", 3)])  # s2 was never written
    journal.append_and_wait([record("s", 2)])
    journal.append_and_wait([record("s", 3)])
    assert seqs(journal, "s") == [1, 2, 3]


def test_disk_full_mid_group_then_the_streams_continue(journal: SqliteJournal) -> None:
    journal.append_and_wait([record("a", 1), record("b", 1)])
    journal.set_max_page_count(1)
    big = os.urandom(64 * 1024)
    with pytest.raises(JournalWriteError, match="SQLITE_FULL"):
        journal.append_and_wait([record("a", 2, data=big), record("b", 2, data=big)])
    journal.set_max_page_count(1_000_000)
    with pytest.raises(StreamConflict):
        journal.append_and_wait([record("b", 1)])
    journal.append_and_wait([record("a", 2), record("b", 2)])
    assert (seqs(journal, "a"), seqs(journal, "b")) == ([1, 2], [1, 2])


# -- stats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_stats_count_commits_batches_rows_and_syncs(path: Path, synchronous: str) -> None:
    with SqliteJournal(path, synchronous=synchronous) as journal:  # type: ignore[arg-type]
        assert journal.stats == JournalStats(0, 0, 0, 0)
        journal.append_and_wait([record("s", 1), record("s", 2)])
        group = Group(journal)  # the held empty batch: acknowledged, nothing written
        for seq in range(3, 13):
            group.append(f"s{seq}", [record("s", seq)])
        group.append("conflict", [record("s", 5)])
        group.release()
        syncs = 2 if synchronous == "full" else 0
        # 2 commits: the first append, then the 10 that queued behind the held one.
        assert journal.stats == JournalStats(commits=2, batches=12, rows=12, syncs=syncs)
        assert journal.commits == 2
        journal.fault = _broken_disk
        with pytest.raises(JournalWriteError):
            journal.append_and_wait([record("s", 13)])
        assert journal.stats.commits == 2  # a failed group counts nothing


def _broken_disk(records: Sequence[Record]) -> None:
    raise OSError(5, "Input/output error")


def test_memory_journal_counts_each_append() -> None:
    journal = MemoryJournal()
    journal.append_and_wait([record("s", 1), record("s", 2)])
    journal.append_and_wait([])
    with pytest.raises(StreamConflict):
        journal.append_and_wait([record("s", 1)])
    assert journal.stats == JournalStats(commits=2, batches=2, rows=2, syncs=0)


# -- kill and reopen -----------------------------------------------------------------------------

_APPENDER = """
import sys
from sagactor.persistence.journal import Record
from sagactor.persistence.sqlite import SqliteJournal
journal = SqliteJournal(sys.argv[1])
print("open", flush=True)
seq = 0
while True:
    seq += 1
    for stream in range(20):
        journal.append([Record(f"s{stream}", seq, "T", b"x", 0.0)], lambda error: None)
    if seq % 50 == 0:
        journal.flush()
"""


def test_reopen_after_kill_keeps_working(path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(path)], env=env, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "open"
        while _rows(path) < 2000:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
    with SqliteJournal(path) as journal:
        for stream in (f"s{i}" for i in range(20)):
            stored = seqs(journal, stream)
            assert stored == list(range(1, len(stored) + 1))
            assert journal.last_seq(stream) == len(stored)
            with pytest.raises(StreamConflict):
                journal.append_and_wait([record(stream, 1)])
            with pytest.raises(StreamConflict):
                journal.append_and_wait([record(stream, len(stored) + 2)])
            journal.append_and_wait([record(stream, len(stored) + 1)])
        journal.kill()  # and once more, with nothing pending
    with SqliteJournal(path) as journal:
        assert journal.open_streams("s") == [f"s{i}" for i in sorted(range(20), key=str)]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return 0
