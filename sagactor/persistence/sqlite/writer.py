"""The SQLite journal's single writer: group commit, sequence numbers checked in memory.

Appends are queued (:mod:`.intake`, which also says how a group is formed); the writer thread
takes every queued batch (up to :data:`MAX_GROUP`),
checks each one's sequence numbers against what it remembers of each stream, writes the group
as one multi-row ``INSERT`` in one transaction (one row per append and stream, see
:mod:`sagactor.persistence.packing`) (one fsync for all of them), and hands the
results to a second thread (:mod:`.answers`) that runs the callbacks in order: the writer only
writes, and a slow or failing callback never holds up the disk.

A batch that continues no stream it should is refused alone (:class:`StreamConflict`), without
touching the database. What memory cannot know is left to SQLite's unique (stream, seq) index:
a stream the writer has not seen yet is assumed new when the batch starts it at seq 1 (checked
in ``streams``, one query per group: a pack is stored under its last seq, so the unique index
alone would not tell); if that check or SQLite refuses a row, the group is rolled back
and written again batch by batch, each in a savepoint, so only the guilty batch fails. After any
failure of the group itself (I/O, disk full, busy) the transaction is rolled back and the
remembered sequence numbers are dropped: they are read again from the journal, never trusted.
"""

from __future__ import annotations

import functools
import logging
import operator
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from sagactor.crashpoints import SimulatedCrash
from sagactor.errors import StreamConflict
from sagactor.persistence.journal import JournalStats, Record, Snapshot, write_error
from sagactor.persistence.packing import Row, packs
from sagactor.persistence.summaries import SagaRow, SummaryKeeper, merge_rows, saga_ids_of

from .answers import Answers, fails_group, refusal
from .intake import MAX_GROUP, Batch, Intake, State
from .reader import any_stored, stored_below, stored_many
from .schema import SAGA_COLUMNS, UPSERT_SAGAS

__all__ = ["MAX_GROUP", "Batch", "Writer"]

_MAX_REMEMBERED: Final = 100_000  # streams whose last seq is kept; past it, start afresh
_EVENT_COLUMNS: Final = 8
_INSERT_EVENTS: Final = (
    "INSERT INTO events (position, stream, seq, type, data, ts, cause, final) VALUES "
)
_LAST_POSITION: Final = "SELECT coalesce(max(position), 0) FROM events"
_UPSERT_STREAMS: Final = (
    "INSERT INTO streams (stream, last_seq, final) VALUES {} "
    "ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq, final = excluded.final"
)
_UPSERT_SNAPSHOT: Final = (
    "INSERT INTO snapshots (stream, seq, data) VALUES (?, ?, ?) "
    "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, data = excluded.data"
)

log = logging.getLogger(__name__)

Ends = dict[str, tuple[int, bool]]
"""Each stream's (last seq, final) after some batches."""
Sagas = dict[str, SagaRow]
"""The new summary row of each saga a group writes to."""
_SAGA_FIELDS: Final = SAGA_COLUMNS.split(", ")
_saga_values: Final = operator.attrgetter(*_SAGA_FIELDS)  # a row's values, in one C call


class _Redo(Exception):  # noqa: N818 - a signal inside the writer, never seen outside
    """SQLite refused a row of the group for its own values: write it again batch by batch."""


class Writer:
    """Owns the write connection and the two threads (writer, callbacks).

    ``release`` runs once both threads are done (or at the end of :meth:`finish`): it closes
    the connections and drops the file lock.
    """

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        guard: threading.RLock,
        *,
        syncs: bool,
        release: Callable[[], None],
    ) -> None:
        self.path = path
        self.conn = conn
        self.guard = guard  # held for each transaction (and by readers of ":memory:")
        # A test hook: called before each batch; raising fails that batch's group.
        self.fault: Callable[[Sequence[Record]], None] | None = None
        self.commits = self.batches = self.rows = self.syncs = 0
        self._syncs_per_commit = 1 if syncs else 0
        self._release = release
        self.intake = Intake(path)
        self._last: dict[str, int] = {}  # committed last seq of streams seen (not final)
        self._assumed: list[str] = []  # streams of this group assumed new (see _ends)
        self.summaries = SummaryKeeper(  # the sagas table
            functools.partial(stored_below, conn), functools.partial(stored_many, conn)
        )
        # The widest statement (a summary row) bounds every chunk.
        largest = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_SAGA_FIELDS)
        self._largest_chunk = min(512, 1 << (largest.bit_length() - 1))
        self.thread = threading.Thread(
            target=self._run, name=f"sagactor-journal-writer:{path}", daemon=True
        )
        self.answers = Answers(path, dead=lambda: self.killed, die=self.die, last=self._last_word)
        self.callbacks = self.answers.thread
        self.thread.start()

    @property
    def state(self) -> State:
        return self.intake.state

    @property
    def killed(self) -> bool:
        return self.intake.state == "killed"

    @property
    def stats(self) -> JournalStats:
        return JournalStats(self.commits, self.batches, self.rows, self.syncs)

    # -- the appenders' side -------------------------------------------------------------------

    def put(self, batch: Batch) -> None:
        self.intake.put(batch)

    def close(self) -> None:
        self.intake.to("closing")
        self.finish()

    def kill(self) -> None:
        self.die()
        self.finish()

    def die(self) -> None:
        self.intake.to("killed")
        self.answers.wake()

    def finish(self) -> None:
        """Wait for both threads, then release. On one of them (a fault hook, a callback)
        return at once instead: the callbacks thread releases when it ends."""
        me = threading.current_thread()
        if me is self.thread or me is self.callbacks:
            return
        self.callbacks.join()
        self.thread.join()
        self._release()

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batches = self.intake.next_group()
                if batches is None:
                    return
                results = self._commit(batches)
                if results is None:
                    return  # killed mid-group: like a crash before COMMIT
                self.answers.give([batch.on_done for batch in batches], results)
        except SimulatedCrash:
            self.die()  # a crash point fired on this thread: the process is "dead"
        except BaseException:
            log.exception("journal %r: writer thread died", self.path)
            self.die()
        finally:
            self.answers.end()

    def _commit(self, batches: Sequence[Batch]) -> list[BaseException | None] | None:
        """Write the group; each batch's result, or None when killed before the commit."""
        with self.guard:
            try:
                prepared = self._prepare(batches)
                if prepared is None:
                    return None
                results, ends, rows, snapshots, sagas = prepared
                if not rows and not snapshots:
                    # Empty or refused batches only: nothing to write or sync.
                    self.batches += sum(1 for result in results if result is None)
                    return results
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    self._write(rows, ends, snapshots, sagas)
                except _Redo:
                    self._rollback()
                    self.summaries.forget()  # each batch is folded again, in its savepoint
                    self.conn.execute("BEGIN IMMEDIATE")
                    redone = self._write_each(batches)
                    if redone is None:
                        self._rollback()
                        return None
                    results, ends, rows = redone
                if self.killed:
                    self._rollback()
                    return None
                self.conn.execute("COMMIT")
            except SimulatedCrash:
                self._forget()
                raise
            except Exception as error:  # noqa: BLE001 - a fault hook may raise anything; stay alive
                self._forget()
                name = getattr(error, "sqlite_errorname", type(error).__name__)
                log.warning(
                    "journal %r: commit of %d batch(es) failed: %s", self.path, len(batches), error
                )
                return [write_error(f"{name}: {error}", error) for _ in batches]
        self._committed(results, ends, len(rows))
        return results

    def _prepare(
        self, batches: Sequence[Batch]
    ) -> tuple[list[BaseException | None], Ends, list[Row], list[Snapshot], Sagas] | None:
        """The group's rows, each batch checked in memory (no SQL but a first look at a
        stream this journal has not seen, when the batch does not start it)."""
        results: list[BaseException | None] = []
        group: Ends = {}
        rows: list[Row] = []
        snapshots: list[Snapshot] = []
        sagas: Sagas = {}
        self._assumed = []
        now = time.time()
        for batch in batches:
            if self.killed:
                return None
            if self.fault is not None:
                self.fault(batch.records)
            ends = self._ends(batch.records, group, assume_new=True)
            if isinstance(ends, StreamConflict):
                results.append(ends)
                continue
            group.update(ends)
            rows.extend(packs(batch.records, now))
            merge_rows(sagas, self.summaries.rows(batch.records, now))
            if batch.snapshot is not None:
                snapshots.append(batch.snapshot)
            results.append(None)
        return results, group, rows, snapshots, sagas

    def _ends(
        self, records: Sequence[Record], group: Ends, *, assume_new: bool
    ) -> Ends | StreamConflict:
        """Each stream's end after ``records``, or the conflict that refuses them.

        ``group`` holds the ends written earlier in the same, not yet committed, group.
        """
        ends: Ends = {}
        for record in records:
            stream = record.stream
            known = ends.get(stream) or group.get(stream)
            if known is not None:
                previous = known[0]
            elif (last := self._last.get(stream)) is not None:
                previous = last
            elif assume_new and record.seq == 1:
                previous = 0  # if it is not new after all, _write's check says so
                self._assumed.append(stream)
            else:
                previous = self._load(stream)
            if record.seq != previous + 1:
                return StreamConflict(stream, record.seq)
            ends[stream] = (record.seq, record.final)
        return ends

    def _load(self, stream: str) -> int:
        row = self.conn.execute("SELECT last_seq FROM streams WHERE stream = ?", (stream,))
        found = row.fetchone()
        last = 0 if found is None else int(found[0])
        self._last[stream] = last  # committed: true whatever this group does
        return last

    def _write(self, rows: list[Row], ends: Ends, snapshots: list[Snapshot], sagas: Sagas) -> None:
        assumed, self._assumed = self._assumed, []
        if assumed and any_stored(self.conn, assumed, self._largest_chunk):
            raise _Redo  # a stream assumed new is not: the slow way finds the guilty batch
        try:
            # Each row gets the position of its last record; one is reserved per record.
            base = int(self.conn.execute(_LAST_POSITION).fetchone()[0])
            values: list[tuple[Any, ...]] = []
            for row in rows:
                base += row[7]
                values.append((base, *row[:7]))
            self._insert(_INSERT_EVENTS + "{}", _EVENT_COLUMNS, values)
            marks = [(stream, seq, 1 if final else 0) for stream, (seq, final) in ends.items()]
            self._insert(_UPSERT_STREAMS, 3, marks)
            summaries = [_saga_values(row) for row in sagas.values()]
            self._insert(UPSERT_SAGAS, len(_SAGA_FIELDS), summaries)
            for snap in snapshots:
                self.conn.execute(_UPSERT_SNAPSHOT, (snap.stream, snap.seq, snap.data))
        except Exception as error:
            if fails_group(error):
                raise
            raise _Redo from error

    def _insert(self, template: str, width: int, rows: Sequence[tuple[Any, ...]]) -> None:
        """Multi-row statements: chunk sizes are powers of two, so few statements are ever
        prepared (SQLite's statement cache keeps them) and each stays under the variable cap."""
        start = 0
        remaining = len(rows)
        while remaining:
            size = min(self._largest_chunk, 1 << (remaining.bit_length() - 1))
            chunk = rows[start : start + size]
            self.conn.execute(_statement(template, width, size), [v for row in chunk for v in row])
            start += size
            remaining -= size

    def _write_each(
        self, batches: Sequence[Batch]
    ) -> tuple[list[BaseException | None], Ends, list[Row]] | None:
        """The slow way, after SQLite refused a row: each batch in a savepoint, so a batch
        refused for its own values (a taken seq, an unstorable value) leaves the others."""
        results: list[BaseException | None] = []
        group: Ends = {}
        rows: list[Row] = []
        now = time.time()
        for batch in batches:
            if self.killed:
                return None
            self.conn.execute("SAVEPOINT batch")
            mine = packs(batch.records, now)
            try:
                ends = self._ends(batch.records, group, assume_new=False)
                if isinstance(ends, StreamConflict):
                    raise ends
                snapshots = [] if batch.snapshot is None else [batch.snapshot]
                self._write(mine, ends, snapshots, self.summaries.rows(batch.records, now))
            except (_Redo, StreamConflict) as error:
                self.conn.execute("ROLLBACK TO batch")
                self.conn.execute("RELEASE batch")
                self.summaries.forget(saga_ids_of(batch.records))
                results.append(refusal(batch.records, error))
                continue
            self.conn.execute("RELEASE batch")
            group.update(ends)
            rows.extend(mine)
            results.append(None)
        return results, group, rows

    def _committed(self, results: list[BaseException | None], ends: Ends, rows: int) -> None:
        self.commits += 1
        self.syncs += self._syncs_per_commit
        self.batches += sum(1 for result in results if result is None)
        self.rows += rows
        if len(self._last) > _MAX_REMEMBERED:
            self._last.clear()  # bounded by live work: forgotten streams are read again
        for stream, (seq, final) in ends.items():
            if final:
                self._last.pop(stream, None)  # an ended stream is rarely written again
            else:
                self._last[stream] = seq

    def _forget(self) -> None:
        """After a failed group: roll back, and trust nothing remembered about the streams."""
        self._last.clear()
        self.summaries.forget()
        self._rollback()

    def _rollback(self) -> None:
        # After SQLITE_FULL or an I/O error SQLite may already have rolled back on its own.
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("journal %r: rollback failed", self.path)

    def _last_word(self) -> None:
        """Once the callbacks thread ends: after the writer, release the file."""
        self.thread.join()
        self._release()


@functools.lru_cache(maxsize=64)
def _statement(template: str, width: int, rows: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return template.format(", ".join([one] * rows))
