"""A pytest suite every :class:`~sagactor.persistence.journal.Journal` must pass.

Subclass :class:`JournalContract` in a module named ``test_*.py`` under a ``Test*`` name and
implement :meth:`~JournalContract.make_journal`::

    class TestMyJournal(JournalContract):
        def make_journal(self, tmp_path: Path) -> Journal:
            return MyJournal(tmp_path / "journal")

The fault tests need a ``fault`` attribute like :class:`~sagactor.persistence.memory.MemoryJournal`
has (called before each commit; an ``OSError`` from it fails that commit); without one they skip.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from sagactor.errors import JournalWriteError, StreamConflict
from sagactor.persistence.journal import Journal, Record, Snapshot

from .journal_helpers import Faultable, Waiter, run_threads, same_records

__all__ = ["JournalContract", "record"]


def record(stream: str, seq: int, *, final: bool = False, data: bytes | None = None) -> Record:
    """A record with recognisable contents (data defaults to ``b"<stream>#<seq>"``)."""
    payload = f"{stream}#{seq}".encode() if data is None else data
    return Record(stream, seq, "Evt", payload, 1000.0 + seq, f"cause-{seq}", final)


class JournalContract(ABC):
    """The behaviour every journal backend shares. Not collected itself (no ``Test`` prefix)."""

    @abstractmethod
    def make_journal(self, tmp_path: Path) -> Journal:
        """A new, empty journal; the suite closes it."""

    @pytest.fixture
    def journal(self, tmp_path: Path) -> Iterator[Journal]:
        journal = self.make_journal(tmp_path)
        try:
            yield journal
        finally:
            if isinstance(journal, Faultable):
                journal.fault = None
            journal.close()

    # -- appending and reading -----------------------------------------------------------------

    def test_append_then_read_in_order(self, journal: Journal) -> None:
        batch = [record("saga/a", 1), record("saga/a", 2), record("saga/a", 3, final=True)]
        journal.append_and_wait(batch)
        stored = journal.read("saga/a")
        assert same_records(stored, batch)
        assert all(r.position > 0 for r in stored)
        assert [r.position for r in stored] == sorted({r.position for r in stored})

    def test_fields_round_trip(self, journal: Journal) -> None:
        odd = Record("participant/x", 1, "Odd", b"\x00\xff" * 100, 1.5, "msg-\u00e9", True)
        journal.append_and_wait([odd, record("participant/x", 2, data=b"")])
        first, second = journal.read("participant/x")
        assert (first.type, first.data, first.ts, first.cause, first.final) == (
            "Odd",
            b"\x00\xff" * 100,
            1.5,
            "msg-\u00e9",
            True,
        )
        assert second.data == b""

    def test_zero_timestamp_is_filled_in(self, journal: Journal) -> None:
        journal.append_and_wait([Record("s", 1, "T", b"", 0.0)])
        assert journal.read("s")[0].ts > 0

    def test_empty_and_unknown_streams(self, journal: Journal) -> None:
        assert journal.read("nope") == []
        assert journal.last_seq("nope") == 0
        assert journal.load_snapshot("nope") is None
        assert journal.streams("") == []
        assert journal.open_streams("") == []
        assert list(journal.read_prefix("")) == []
        assert journal.read_all() == []

    def test_read_after_and_limit(self, journal: Journal) -> None:
        journal.append_and_wait([record("s", seq) for seq in range(1, 11)])
        assert [r.seq for r in journal.read("s", after=7)] == [8, 9, 10]
        assert [r.seq for r in journal.read("s", after=2, limit=3)] == [3, 4, 5]
        assert [r.seq for r in journal.read("s", limit=2)] == [1, 2]
        assert journal.read("s", after=10) == []

    def test_batches_append_to_the_stream(self, journal: Journal) -> None:
        journal.append_and_wait([record("s", 1), record("s", 2)])
        journal.append_and_wait([record("s", 3)])
        assert [r.seq for r in journal.read("s")] == [1, 2, 3]
        assert journal.last_seq("s") == 3

    def test_an_unawaited_append_is_stored_and_answered_in_order(self, journal: Journal) -> None:
        answered: list[tuple[str, BaseException | None]] = []
        done = threading.Event()

        def answer(tag: str) -> Callable[[BaseException | None], None]:
            def on_done(error: BaseException | None) -> None:
                answered.append((tag, error))
                if len(answered) == 3:
                    done.set()

            return on_done

        journal.append_unawaited([record("s", 1)], answer("first"))
        journal.append_unawaited([record("s", 3)], answer("gap"))  # refused, as by append
        journal.append([record("s", 2)], answer("awaited"))
        assert done.wait(30)
        assert [tag for tag, _ in answered] == ["first", "gap", "awaited"]
        assert answered[0][1] is None
        assert answered[2][1] is None
        assert isinstance(answered[1][1], StreamConflict)
        assert [r.seq for r in journal.read("s")] == [1, 2]

    # -- optimistic concurrency ----------------------------------------------------------------

    def test_taken_seq_refuses_the_whole_batch(self, journal: Journal) -> None:
        journal.append_and_wait([record("a", 1)])
        with pytest.raises(StreamConflict) as caught:
            journal.append_and_wait(
                [record("b", 1), record("a", 1), record("a", 2)],
                snapshot=Snapshot("b", 1, b"snap"),
            )
        assert (caught.value.stream, caught.value.seq) == ("a", 1)
        assert journal.read("b") == []
        assert journal.streams("") == ["a"]
        assert journal.load_snapshot("b") is None
        assert [r.seq for r in journal.read_all()] == [1]

    def test_duplicate_seq_within_a_batch_is_refused(self, journal: Journal) -> None:
        with pytest.raises(StreamConflict):
            journal.append_and_wait([record("a", 1), record("a", 1)])
        assert journal.read("a") == []

    def test_seq_must_continue_the_stream(self, journal: Journal) -> None:
        journal.append_and_wait([record("a", 1)])
        with pytest.raises(StreamConflict):
            journal.append_and_wait([record("a", 3)])
        with pytest.raises(StreamConflict):
            journal.append_and_wait([record("b", 2)])
        assert journal.last_seq("a") == 1
        assert journal.last_seq("b") == 0

    def test_journal_works_after_a_conflict(self, journal: Journal) -> None:
        journal.append_and_wait([record("a", 1)])
        with pytest.raises(StreamConflict):
            journal.append_and_wait([record("a", 1)])
        journal.append_and_wait([record("a", 2)])
        assert [r.seq for r in journal.read("a")] == [1, 2]

    # -- prefixes, global order, stream listings -----------------------------------------------

    def test_read_prefix_orders_by_stream_then_seq(self, journal: Journal) -> None:
        for batch in (
            [record("saga/b", 1)],
            [record("saga/a", 1), record("participant/p", 1)],
            [record("saga/b", 2), record("saga/a", 2)],
            [record("saga", 1), record("sagb/x", 1), record("saga/c", 1)],
        ):
            journal.append_and_wait(batch)
        got = [(r.stream, r.seq) for r in journal.read_prefix("saga/")]
        assert got == [("saga/a", 1), ("saga/a", 2), ("saga/b", 1), ("saga/b", 2), ("saga/c", 1)]
        everything = [(r.stream, r.seq) for r in journal.read_prefix("")]
        assert everything == sorted(everything)
        assert len(everything) == 8

    def test_prefix_is_literal(self, journal: Journal) -> None:
        # Wildcards of LIKE or glob must not leak into prefix matching.
        for name in ("s/1_2", "s/1x2", "s/%a", "s/ba", "S/1_2"):
            journal.append_and_wait([record(name, 1)])
        assert [r.stream for r in journal.read_prefix("s/1_")] == ["s/1_2"]
        assert journal.streams("s/%") == ["s/%a"]
        assert journal.open_streams("s/1_") == ["s/1_2"]
        assert journal.streams("s/") == ["s/%a", "s/1_2", "s/1x2", "s/ba"]

    def test_read_all_in_global_order(self, journal: Journal) -> None:
        journal.append_and_wait([record("b", 1), record("a", 1)])
        journal.append_and_wait([record("a", 2)])
        journal.append_and_wait([record("c", 1), record("b", 2)])
        stored = journal.read_all()
        assert [(r.stream, r.seq) for r in stored] == [
            ("b", 1),
            ("a", 1),
            ("a", 2),
            ("c", 1),
            ("b", 2),
        ]
        positions = [r.position for r in stored]
        assert positions == sorted(set(positions))
        assert positions[0] > 0
        tail = journal.read_all(after=positions[1])
        assert [r.position for r in tail] == positions[2:]
        assert [r.position for r in journal.read_all(after=positions[1], limit=2)] == positions[2:4]
        assert journal.read_all(after=positions[-1]) == []

    def test_open_streams_respect_final(self, journal: Journal) -> None:
        journal.append_and_wait([record("saga/done", 1), record("saga/done", 2, final=True)])
        journal.append_and_wait([record("saga/running", 1)])
        journal.append_and_wait([record("saga/x", 1, final=True)])
        journal.append_and_wait([record("other/open", 1)])
        assert journal.open_streams("saga/") == ["saga/running"]
        # A stream is open again once a non-final record follows its final one.
        journal.append_and_wait([record("saga/x", 2)])
        assert journal.open_streams("saga/") == ["saga/running", "saga/x"]
        journal.append_and_wait([record("saga/running", 2, final=True)])
        assert journal.open_streams("saga/") == ["saga/x"]
        assert journal.open_streams("") == ["other/open", "saga/x"]

    def test_streams_are_listed_sorted(self, journal: Journal) -> None:
        for name in ("p/z", "saga/2", "saga/10", "saga/1"):
            journal.append_and_wait([record(name, 1, final=True)])
        assert journal.streams("saga/") == ["saga/1", "saga/10", "saga/2"]
        assert journal.streams("") == ["p/z", "saga/1", "saga/10", "saga/2"]
        assert journal.streams("q") == []

    def test_last_seq_follows_appends(self, journal: Journal) -> None:
        assert journal.last_seq("s") == 0
        journal.append_and_wait([record("s", 1), record("s", 2)])
        assert journal.last_seq("s") == 2
        journal.append_and_wait([record("t", 1), record("s", 3)])
        assert (journal.last_seq("s"), journal.last_seq("t")) == (3, 1)

    def test_read_caused_is_one_sagas_records(self, journal: Journal) -> None:
        def caused(stream: str, seq: int, cause: str) -> Record:
            return Record(stream, seq, "Evt", b"", 1.0, cause)

        journal.append_and_wait([caused("saga/a", 1, "a/s1/action"), caused("p/x", 1, "a/s1/x")])
        journal.append_and_wait([caused("p/x", 2, "ab/s1/x"), caused("p/y", 1, "a")])
        journal.append_and_wait([caused("p/y", 2, "a-b/s1/x"), caused("p/y", 3, "a/s2/x")])
        got = journal.read_caused("a")
        assert [(r.stream, r.seq) for r in got] == [("saga/a", 1), ("p/x", 1), ("p/y", 3)]
        assert [r.position for r in got] == sorted(r.position for r in got)
        assert [r.seq for r in journal.read_caused("a", after=got[1].position)] == [3]
        assert [r.stream for r in journal.read_caused("ab")] == ["p/x"]
        assert journal.read_caused("nope") == []

    def test_latest_is_each_streams_last_record(self, journal: Journal) -> None:
        journal.append_and_wait([record("saga/a", 1), record("saga/b", 1)])
        journal.append_and_wait([record("saga/a", 2, final=True)])
        found = journal.latest(["saga/a", "saga/b", "saga/none", "saga/a"])
        assert {s: (r.seq, r.final) for s, r in found.items()} == {
            "saga/a": (2, True),
            "saga/b": (1, False),
        }
        assert journal.latest([]) == {}
        many = [f"m/{i}" for i in range(1200)]  # more than one query's worth of names
        journal.append_and_wait([record(name, 1) for name in many])
        assert sorted(journal.latest(many)) == sorted(many)

    # -- snapshots -----------------------------------------------------------------------------

    def test_snapshot_saved_with_its_batch(self, journal: Journal) -> None:
        journal.append_and_wait([record("p", 1), record("p", 2)], snapshot=Snapshot("p", 2, b"v2"))
        assert journal.load_snapshot("p") == Snapshot("p", 2, b"v2")
        journal.append_and_wait([record("p", 3)], snapshot=Snapshot("p", 3, b"v3"))
        assert journal.load_snapshot("p") == Snapshot("p", 3, b"v3")
        # A refused batch leaves the previous snapshot in place.
        with pytest.raises(StreamConflict):
            journal.append_and_wait([record("p", 3)], snapshot=Snapshot("p", 3, b"bad"))
        assert journal.load_snapshot("p") == Snapshot("p", 3, b"v3")

    def test_snapshot_without_records(self, journal: Journal) -> None:
        journal.append_and_wait([record("p", 1)])
        journal.append_and_wait([], snapshot=Snapshot("p", 1, b"folded"))
        assert journal.load_snapshot("p") == Snapshot("p", 1, b"folded")
        assert journal.last_seq("p") == 1

    # -- callbacks and threads -----------------------------------------------------------------

    def test_callbacks_run_in_append_order(self, journal: Journal) -> None:
        waiter = Waiter(60)
        for i in range(60):
            # Every third batch conflicts: failures keep their place in the order too.
            stream = "same" if i % 3 == 0 else f"s{i}"
            journal.append([record(stream, 1)], waiter.callback(i))
        results = waiter.wait()
        assert [tag for tag, _ in results] == list(range(60))
        failed = [tag for tag, error in results if error is not None]
        assert failed == list(range(3, 60, 3))
        assert all(isinstance(error, StreamConflict) for _, error in results if error)

    def test_each_threads_callbacks_keep_its_order(self, journal: Journal) -> None:
        threads, per_thread = 4, 50
        waiter = Waiter(threads * per_thread)

        def run(t: int) -> None:
            for seq in range(1, per_thread + 1):
                journal.append([record(f"t{t}", seq)], waiter.callback((t, seq)))

        run_threads(threads, run)
        results = waiter.wait()
        assert all(error is None for _, error in results)
        for t in range(threads):
            mine = [tag for tag, _ in results if isinstance(tag, tuple) and tag[0] == t]
            assert mine == [(t, seq) for seq in range(1, per_thread + 1)]
            assert [r.seq for r in journal.read(f"t{t}")] == list(range(1, per_thread + 1))

    def test_concurrent_appends_lose_nothing(self, journal: Journal) -> None:
        threads, per_thread = 8, 25

        def run(t: int) -> None:
            for i in range(per_thread):
                journal.append_and_wait([record(f"own/{t}", i + 1)])
                # Every thread also extends one shared stream, retrying on conflicts.
                while True:
                    seq = journal.last_seq("shared") + 1
                    try:
                        journal.append_and_wait([record("shared", seq, data=b"%d" % t)])
                        break
                    except StreamConflict:
                        continue

        run_threads(threads, run)
        for t in range(threads):
            assert [r.seq for r in journal.read(f"own/{t}")] == list(range(1, per_thread + 1))
        shared = journal.read("shared")
        assert [r.seq for r in shared] == list(range(1, threads * per_thread + 1))
        assert sorted(r.data for r in shared) == sorted(
            b"%d" % t for t in range(threads) for _ in range(per_thread)
        )
        everything = journal.read_all()
        assert len(everything) == 2 * threads * per_thread
        assert len({r.position for r in everything}) == len(everything)

    # -- faults --------------------------------------------------------------------------------

    def _faultable(self, journal: Journal) -> Faultable:
        if not isinstance(journal, Faultable):
            pytest.skip(f"{type(journal).__name__} has no fault hook")
        return journal

    def test_failed_write_stores_nothing(self, journal: Journal) -> None:
        faulty = self._faultable(journal)
        journal.append_and_wait([record("s", 1)], snapshot=Snapshot("s", 1, b"one"))

        def broken_disk(records: Sequence[Record]) -> None:
            raise OSError(5, "Input/output error")

        faulty.fault = broken_disk
        with pytest.raises(JournalWriteError):
            journal.append_and_wait(
                [record("s", 2), record("t", 1)], snapshot=Snapshot("s", 2, b"two")
            )
        assert [r.seq for r in journal.read("s")] == [1]
        assert journal.read("t") == []
        assert journal.last_seq("s") == 1
        assert journal.streams("") == ["s"]
        assert journal.load_snapshot("s") == Snapshot("s", 1, b"one")
        assert len(journal.read_all()) == 1

    def test_works_after_fault_is_cleared(self, journal: Journal) -> None:
        faulty = self._faultable(journal)
        failures = 0

        def flaky(records: Sequence[Record]) -> None:
            nonlocal failures
            failures += 1
            raise OSError(28, "No space left on device")

        faulty.fault = flaky
        for _ in range(3):
            with pytest.raises(JournalWriteError):
                journal.append_and_wait([record("s", 1)])
        assert failures >= 3
        faulty.fault = None
        journal.append_and_wait([record("s", 1)])
        journal.append_and_wait([record("s", 2)])
        assert [r.seq for r in journal.read("s")] == [1, 2]
        assert journal.open_streams("") == ["s"]
