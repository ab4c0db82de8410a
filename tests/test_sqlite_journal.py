"""What only the SQLite journal does: files, locks, refusals, faults, group commit, kill."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sagactor.crashpoints import CrashPoint, SimulatedCrash
from sagactor.errors import (
    JournalCorrupt,
    JournalLocked,
    JournalWriteError,
    RuntimeClosed,
    StreamConflict,
)
from sagactor.persistence.journal import DoneCallback, Record, Snapshot
from sagactor.persistence.sqlite import SCHEMA_VERSION, SqliteJournal
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


class Gate:
    """A fault hook that holds the writer inside its first transaction until opened."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, records: Sequence[Record]) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.opened.wait(WAIT), "gate never opened"


class Results:
    """Collects ``on_done`` results by tag; :meth:`wait` blocks until ``count`` arrived."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.got: dict[object, BaseException | None] = {}
        self.order: list[object] = []
        self._lock = threading.Lock()
        self._all = threading.Event()

    def __call__(self, tag: object) -> DoneCallback:
        def on_done(error: BaseException | None) -> None:
            with self._lock:
                self.got[tag] = error
                self.order.append(tag)
                if len(self.order) == self.count:
                    self._all.set()

        return on_done

    def wait(self) -> dict[object, BaseException | None]:
        assert self._all.wait(WAIT), f"{len(self.order)} of {self.count} callbacks ran"
        return self.got


def file_state(path: Path) -> bytes:
    return path.read_bytes()


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# -- files: reopening, refusing what is not ours -------------------------------------------------


def test_reopen_keeps_everything(path: Path) -> None:
    with SqliteJournal(path) as first:
        first.append_and_wait([record("saga/a", 1), record("saga/a", 2, final=True)])
        first.append_and_wait([record("saga/b", 1)], snapshot=Snapshot("saga/b", 1, b"snap"))
        before = first.read_all()
    with SqliteJournal(path, synchronous="normal") as second:
        assert second.read_all() == before
        assert second.open_streams("saga/") == ["saga/b"]
        assert second.last_seq("saga/a") == 2
        assert second.load_snapshot("saga/b") == Snapshot("saga/b", 1, b"snap")
        second.append_and_wait([record("saga/b", 2)])
        assert second.read_all()[-1].position > before[-1].position
        with pytest.raises(StreamConflict):
            second.append_and_wait([record("saga/a", 2)])


def test_file_is_a_marked_wal_database(path: Path) -> None:
    SqliteJournal(path).close()
    with sqlite3.connect(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta == {"schema_version": SCHEMA_VERSION, "application_id": "sagactor"}
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x53414741
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_empty_file_becomes_a_journal(path: Path) -> None:
    path.touch()
    with SqliteJournal(path) as journal:
        journal.append_and_wait([record("s", 1)])
        assert journal.last_seq("s") == 1


def test_empty_sqlite_database_becomes_a_journal(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")  # writes a header and nothing else
    conn.close()
    with SqliteJournal(path) as journal:
        journal.append_and_wait([record("s", 1)])


def _foreign_database(path: Path, mode: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {mode}")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada'), ('grace')")
    conn.close()


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_foreign_database_is_refused_untouched(path: Path, mode: str) -> None:
    _foreign_database(path, mode)
    before = file_state(path)
    with pytest.raises(JournalCorrupt) as caught:
        SqliteJournal(path)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    assert "not a sagactor journal" in str(caught.value)
    assert "users" in str(caught.value)
    assert file_state(path) == before
    assert not lock_path(path).exists()


@pytest.mark.parametrize("prefix", [b"", b"SQLite format 3\x00"], ids=["random", "sqlite-header"])
def test_random_bytes_are_refused_untouched(path: Path, prefix: bytes) -> None:
    path.write_bytes(prefix + os.urandom(8192))
    before = file_state(path)
    with pytest.raises(JournalCorrupt) as caught:
        SqliteJournal(path)
    assert str(path) in str(caught.value)
    assert "not" in caught.value.problem  # "not an SQLite database" / "not a readable ..."
    assert file_state(path) == before
    assert not lock_path(path).exists()


def test_newer_schema_is_refused_untouched(path: Path) -> None:
    with SqliteJournal(path) as journal:
        journal.append_and_wait([record("s", 1)])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    conn.close()
    before = file_state(path)
    with pytest.raises(JournalCorrupt, match="newer sagactor") as caught:
        SqliteJournal(path)
    assert caught.value.path == str(path)
    assert file_state(path) == before


def test_malformed_events_table_is_refused(path: Path) -> None:
    SqliteJournal(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    # Rebuild events without STRICT and slip in rows of the wrong types.
    conn.execute("DROP TABLE events")
    conn.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT, seq INTEGER, "
        "type TEXT, data BLOB, ts REAL, cause TEXT, final INTEGER)"
    )
    conn.execute("INSERT INTO events VALUES (1, 's', 'one', 'T', 'text', 'x', NULL, 0)")
    conn.close()
    with pytest.raises(JournalCorrupt, match="events table is malformed"):
        SqliteJournal(path)


def test_undurable_settings_need_the_flag(path: Path) -> None:
    with pytest.raises(ValueError, match="durable=False"):
        SqliteJournal(":memory:")
    with pytest.raises(ValueError, match="durable=False"):
        SqliteJournal(path, synchronous="off")
    assert not path.exists()
    with SqliteJournal(path, synchronous="off", durable=False) as journal:
        assert not journal.durable
        journal.append_and_wait([record("s", 1)])
    with SqliteJournal(":memory:", durable=False) as memory:
        memory.append_and_wait([record("s", 1)])
        assert memory.last_seq("s") == 1


# -- the lock ------------------------------------------------------------------------------------


def test_second_open_in_this_process_is_locked(path: Path) -> None:
    first = SqliteJournal(path)
    with pytest.raises(JournalLocked) as caught:
        SqliteJournal(path)
    assert caught.value.path == str(path)
    first.append_and_wait([record("s", 1)])  # the refused second one disturbed nothing
    first.close()
    with SqliteJournal(path) as again:
        assert again.last_seq("s") == 1
    killed = SqliteJournal(path)
    killed.kill()
    SqliteJournal(path).close()


_CHILD = """
import sys
from sagactor.errors import JournalLocked
from sagactor.persistence.journal import Record
from sagactor.persistence.sqlite import SqliteJournal
try:
    journal = SqliteJournal(sys.argv[1])
except JournalLocked:
    print("locked", flush=True)
    sys.exit(3)
journal.append_and_wait([Record("child", 1, "T", b"", 1.0)])
print("open", flush=True)
sys.stdin.read()
journal.close()
"""


def test_lock_holds_across_processes(path: Path) -> None:
    with SqliteJournal(path):
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path)],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=False,
        )
        assert (child.returncode, child.stdout.strip()) == (3, "locked"), child.stderr
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(JournalLocked):
            SqliteJournal(path)
        holder.stdin.close()
        assert holder.wait(WAIT) == 0
    with SqliteJournal(path) as journal:
        assert journal.last_seq("child") == 1


def test_sigkilled_holder_releases_the_lock(path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "open"
        holder.send_signal(signal.SIGKILL)
        holder.wait(WAIT)
        holder.stdin.close()
    with SqliteJournal(path) as journal:
        assert journal.last_seq("child") == 1  # acknowledged before the kill: kept
        journal.append_and_wait([record("child", 2)])


# -- write failures ------------------------------------------------------------------------------


def test_disk_full_is_reported_and_survived(journal: SqliteJournal) -> None:
    journal.append_and_wait([record("s", 1)])
    cap = journal.set_max_page_count(1)  # SQLite raises it to the current size
    big = [record("s", seq, data=os.urandom(64 * 1024)) for seq in range(2, 6)]
    with pytest.raises(JournalWriteError, match="SQLITE_FULL"):
        journal.append_and_wait(big, snapshot=Snapshot("s", 5, b"snap"))
    assert journal.last_seq("s") == 1
    assert journal.load_snapshot("s") is None
    assert journal.set_max_page_count(1) == cap  # nothing was written
    journal.set_max_page_count(1_000_000)
    journal.append_and_wait(big)
    assert [r.seq for r in journal.read("s")] == [1, 2, 3, 4, 5]


def test_io_error_fails_the_group_and_is_survived(journal: SqliteJournal) -> None:
    def io_error(records: Sequence[Record]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    journal.fault = io_error
    with pytest.raises(JournalWriteError, match="disk I/O error"):
        journal.append_and_wait([record("s", 1)])
    journal.fault = None
    journal.append_and_wait([record("s", 1)])
    assert journal.last_seq("s") == 1


def test_fault_of_any_kind_keeps_the_writer_alive(journal: SqliteJournal) -> None:
    def bug(records: Sequence[Record]) -> None:
        raise RuntimeError("surprise")

    journal.fault = bug
    with pytest.raises(JournalWriteError, match="surprise"):
        journal.append_and_wait([record("s", 1)])
    journal.fault = None
    journal.append_and_wait([record("s", 1)])


def test_busy_database_is_reported_then_recovers(path: Path) -> None:
    with SqliteJournal(path, busy_timeout=0.05) as journal:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # holds the write lock
            with pytest.raises(JournalWriteError, match="SQLITE_BUSY"):
                journal.append_and_wait([record("s", 1)])
            other.execute("ROLLBACK")
        finally:
            other.close()
        journal.append_and_wait([record("s", 1)])
        assert journal.last_seq("s") == 1


def test_a_group_failure_fails_every_batch_of_it(journal: SqliteJournal) -> None:
    gate = Gate()
    calls = 0

    def fault(records: Sequence[Record]) -> None:
        nonlocal calls
        gate(records)
        calls += 1
        if calls == 3:
            raise OSError(5, "Input/output error")

    journal.fault = fault
    results = Results(5)
    journal.append([record("a", 1)], results(0))
    assert gate.entered.wait(WAIT)
    for i in range(1, 5):
        journal.append([record(f"b{i}", 1)], results(i))
    gate.opened.set()
    got = results.wait()
    # The first group (batch 0) committed; the second (batches 1-4) hit the I/O error.
    assert got[0] is None
    assert all(isinstance(got[i], JournalWriteError) for i in range(1, 5))
    journal.fault = None
    assert journal.streams("") == ["a"]


# -- group commit --------------------------------------------------------------------------------


def test_group_commit_shares_transactions(journal: SqliteJournal) -> None:
    gate = Gate()
    journal.fault = gate
    threads, per_thread = 10, 100
    results = Results(threads * per_thread + 1)
    start = journal.commits

    def run(t: int) -> None:
        for seq in range(1, per_thread + 1):
            journal.append([record(f"t{t}", seq)], results((t, seq)))

    journal.append([], results("first"))  # starts a transaction and waits at the gate
    assert gate.entered.wait(WAIT)
    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    gate.opened.set()
    got = results.wait()
    assert all(error is None for error in got.values())
    # One transaction for the held batch, one for the 1,000 that queued behind it.
    assert journal.commits - start <= 2
    for t in range(threads):
        tags = [tag for tag in results.order if isinstance(tag, tuple) and tag[0] == t]
        assert tags == [(t, seq) for seq in range(1, per_thread + 1)]
        assert journal.last_seq(f"t{t}") == per_thread


def test_batches_of_a_group_succeed_or_fail_alone(journal: SqliteJournal) -> None:
    gate = Gate()
    journal.fault = gate
    results = Results(6)
    journal.append([record("hold", 1)], results("hold"))
    assert gate.entered.wait(WAIT)
    journal.append([record("a", 1)], results("a1"))
    journal.append([record("b", 1), record("a", 1)], results("conflict"))  # a1 is taken
    bad = Record("c", 1, "T", "not bytes", 1.0)  # type: ignore[arg-type]
    journal.append([bad], results("unstorable"))
    journal.append([record("a", 2)], results("a2"), snapshot=Snapshot("a", 2, b"s"))
    journal.append([record("b", 1)], results("b1"))
    gate.opened.set()
    got = results.wait()
    assert results.order == ["hold", "a1", "conflict", "unstorable", "a2", "b1"]
    assert isinstance(got["conflict"], StreamConflict)
    assert isinstance(got["unstorable"], JournalWriteError)
    assert [tag for tag, error in got.items() if error is None] == ["hold", "a1", "a2", "b1"]
    assert journal.streams("") == ["a", "b", "hold"]
    assert [r.stream for r in journal.read_all()] == ["hold", "a", "a", "b"]
    assert journal.load_snapshot("a") == Snapshot("a", 2, b"s")


def test_failing_callback_does_not_stop_the_writer(
    journal: SqliteJournal, caplog: pytest.LogCaptureFixture
) -> None:
    def rude(error: BaseException | None) -> None:
        raise ValueError("callback bug")

    with caplog.at_level(logging.ERROR, logger="sagactor"):
        journal.append([record("s", 1)], rude)
        journal.append_and_wait([record("s", 2)])
    assert "append callback raised" in caplog.text
    assert journal.last_seq("s") == 2


def test_blocking_append_from_a_callback_is_refused(journal: SqliteJournal) -> None:
    outcome: list[BaseException | None] = []
    done = threading.Event()

    def second(error: BaseException | None) -> None:
        outcome.append(error)
        done.set()

    def nested(error: BaseException | None) -> None:
        try:
            journal.append_and_wait([record("s", 2)])
        except RuntimeError as refused:
            outcome.append(refused)
        journal.append([record("s", 2)], second)

    journal.append([record("s", 1)], nested)
    assert done.wait(WAIT)
    assert isinstance(outcome[0], RuntimeError)
    assert outcome[1:] == [None]
    assert journal.last_seq("s") == 2


def test_caller_may_reuse_its_list(journal: SqliteJournal) -> None:
    batch = [record("s", 1)]
    results = Results(1)
    journal.append(batch, results("one"))
    batch.clear()
    batch.append(record("t", 5))
    assert results.wait() == {"one": None}
    assert journal.streams("") == ["s"]


# -- closing and killing -------------------------------------------------------------------------


def test_close_commits_what_is_queued(path: Path) -> None:
    journal = SqliteJournal(path)
    results = Results(200)
    for seq in range(1, 201):
        journal.append([record("s", seq)], results(seq))
    journal.close()
    assert all(error is None for error in results.wait().values())
    journal.close()  # idempotent
    with pytest.raises(RuntimeClosed):
        journal.append([record("s", 201)], results(201))
    with pytest.raises(RuntimeClosed):
        journal.read("s")
    journal.kill()  # after close: nothing left to kill
    with SqliteJournal(path) as reopened:
        assert reopened.last_seq("s") == 200


def test_kill_drops_queued_batches(path: Path) -> None:
    journal = SqliteJournal(path)
    journal.append_and_wait([record("s", 1)])
    gate = Gate()
    answered: list[BaseException | None] = []

    def fault(records: Sequence[Record]) -> None:
        gate(records)
        journal.kill()  # dies mid-transaction, from the writer thread itself

    journal.fault = fault
    journal.append([record("s", 2)], answered.append)
    assert gate.entered.wait(WAIT)
    for seq in range(3, 6):
        journal.append([record("s", seq)], answered.append)
    gate.opened.set()
    journal.kill()  # from here too: waits for the writer to stop
    journal.append([record("s", 9)], answered.append)  # a dead process writes nothing
    assert answered == []
    with SqliteJournal(path) as reopened:
        assert [r.seq for r in reopened.read("s")] == [1]
        assert reopened.streams("") == ["s"]


def test_kill_of_an_idle_journal_keeps_commits(path: Path) -> None:
    journal = SqliteJournal(path)
    journal.append_and_wait([record("s", 1)])
    journal.kill()
    journal.kill()
    with pytest.raises(RuntimeClosed):
        journal.last_seq("s")
    with SqliteJournal(path) as reopened:
        assert reopened.last_seq("s") == 1


def test_simulated_crash_in_a_callback_kills_the_journal(path: Path) -> None:
    journal = SqliteJournal(path)
    crashed = threading.Event()
    answered: list[BaseException | None] = []

    def crash(error: BaseException | None) -> None:
        crashed.set()
        raise SimulatedCrash(CrashPoint.AFTER_COMMIT, 1)

    journal.append([record("s", 1)], crash)
    assert crashed.wait(WAIT)
    journal.append([record("t", 1)], answered.append)  # the writer is dead or dying
    journal.kill()  # returns once the writer is gone
    assert answered == []
    with SqliteJournal(path) as reopened:
        assert reopened.last_seq("s") == 1  # committed before the crash
        assert reopened.last_seq("t") == 0


# -- reading -------------------------------------------------------------------------------------


def test_read_prefix_pages_through_many_streams(journal: SqliteJournal) -> None:
    journal.read_chunk = 7
    batch = [record(f"saga/{i:04d}", seq) for i in range(300) for seq in (1, 2, 3)]
    journal.append_and_wait(batch[:450])
    journal.append_and_wait([*batch[450:], record("sagb", 1), record("other/x", 1)])
    got = [(r.stream, r.seq) for r in journal.read_prefix("saga/")]
    assert got == [(r.stream, r.seq) for r in batch]
    assert len(list(journal.read_prefix(""))) == len(batch) + 2


def test_open_streams_among_many_finished(journal: SqliteJournal) -> None:
    finished = [record(f"saga/{i:05d}", seq, final=seq == 2) for i in range(2000) for seq in (1, 2)]
    journal.append_and_wait(finished)
    journal.append_and_wait([record("saga/00007", 3), record("saga/zz", 1)])
    assert journal.open_streams("saga/") == ["saga/00007", "saga/zz"]
    assert len(journal.streams("saga/")) == 2001


def test_prefix_bounds_at_unusual_characters(journal: SqliteJournal) -> None:
    names = ["a\U0010ffff", "a\U0010ffffb", "b", "\ud7ff", "\ud7ffx", "\ue000"]
    for name in names:
        journal.append_and_wait([record(name, 1)])
    assert journal.streams("a\U0010ffff") == ["a\U0010ffff", "a\U0010ffffb"]
    assert journal.streams("\ud7ff") == ["\ud7ff", "\ud7ffx"]
    assert journal.streams("") == sorted(names)
