"""The SQLite journal: one WAL file, one writer thread that commits appends in groups.

This module opens the file (judging it before anything is written, then under the lock) and
puts the parts together: :mod:`.writer` writes, :mod:`.reader` reads through a connection of its
own and sees committed data only, :mod:`.schema` knows the format.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

from sagactor.errors import DefinitionError, JournalError, RuntimeClosed
from sagactor.persistence.journal import (
    DoneCallback,
    Journal,
    JournalStats,
    Record,
    Snapshot,
)

from ..summaries import SagaQuery, SagaRow
from . import files, sagas, schema
from .intake import Batch
from .reader import Reader
from .writer import Writer

__all__ = ["SqliteJournal"]


class SqliteJournal(Journal):
    """A :class:`Journal` in one SQLite file, safe for any number of appending threads.

    Args:
        path: The journal file; created if missing. ``":memory:"`` needs ``durable=False``.
        synchronous: SQLite's ``synchronous`` setting. ``"full"`` survives power loss,
            ``"normal"`` only a process crash, ``"off"`` neither (needs ``durable=False``).
        durable: Must be ``False`` to accept a setting that can lose acknowledged appends.
        busy_timeout: Seconds a commit waits for another connection's write lock.

    Raises:
        JournalLocked: Another journal object (in any process) has the file open.
        JournalCorrupt: The file is not a sagactor journal, or a newer sagactor wrote it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["full", "normal", "off"] = "full",
        durable: bool = True,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = os.fspath(path)
        self.durable = durable
        if synchronous not in ("full", "normal", "off"):
            raise DefinitionError(
                "SqliteJournal",
                f"synchronous must be 'full', 'normal' or 'off', not {synchronous!r}",
                kind="setting",
            )
        if self.path == "":
            raise DefinitionError("SqliteJournal", "journal path is empty", kind="setting")
        memory = self.path == ":memory:"
        if durable and (memory or synchronous == "off"):
            what = "':memory:'" if memory else "synchronous='off'"
            raise DefinitionError(
                "SqliteJournal",
                f"{what} loses acknowledged appends on a crash; pass durable=False to accept that",
                kind="setting",
            )
        if sqlite3.sqlite_version_info < (3, 37):
            raise JournalError(f"SQLite {sqlite3.sqlite_version} is too old (3.37+ needed)")
        self._busy_ms = int(busy_timeout * 1000)
        self._lock_fd: int | None = None
        self._released = False
        self._release_lock = threading.Lock()
        # What a refused open may remove again: only the side files it created itself.
        self._created = [] if memory else files.missing_side_files(self.path)
        wconn, rconn, guard = self._open(memory, synchronous)
        self._reader = Reader(self.path, rconn, guard if memory else threading.RLock())
        self._writer = Writer(
            self.path, wconn, guard, syncs=synchronous == "full", release=self._release
        )

    # -- opening -------------------------------------------------------------------------------

    def _open(
        self, memory: bool, synchronous: str
    ) -> tuple[sqlite3.Connection, sqlite3.Connection, threading.RLock]:
        """The writer's and the reader's connections, and the lock held for a transaction."""
        has_schema = False
        if not memory:
            # Judge an existing file before anything (even the lock file) is written.
            try:
                has_schema = schema.inspect(self.path, self._busy_ms)
            except BaseException:
                self.remove_side_files()  # a WAL-mode file read-only leaves -wal and -shm
                raise
            self._lock_fd = files.acquire_lock(self.path)
        try:
            wconn = schema.connect(self.path, self.path, self._busy_ms)
        except BaseException:
            self._unlock()
            self.remove_side_files()
            raise
        try:
            if not memory:
                # Read the file again under the lock: another process may have changed it.
                has_schema = schema.inspect(self.path, self._busy_ms)
                if not has_schema:
                    # Before WAL mode writes the header: only a new file can take it.
                    wconn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                wconn.execute("PRAGMA journal_mode = WAL")
            wconn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            if not has_schema:
                schema.create_schema(wconn)
            else:
                schema.upgrade(self.path, wconn)
            guard = threading.RLock()
            if memory:
                # Two connections to ":memory:" are two databases: share the writer's, and
                # keep readers out while a transaction is open (one lock for both).
                return wconn, wconn, guard
            rconn = schema.connect(self.path, self.path, self._busy_ms)
            rconn.execute("PRAGMA query_only = ON")
            return wconn, rconn, guard
        except BaseException as error:
            wconn.close()
            self._unlock()
            self.remove_side_files()
            if isinstance(error, sqlite3.Error):
                raise schema.read_error(self.path, "cannot open", error) from error
            raise

    def remove_side_files(self) -> None:
        """After a refused open: delete the ``-wal``, ``-shm`` and ``.lock`` files this journal
        created, so the file is left as it was found. Only once it is closed, and only if it
        committed nothing (a WAL holding its commits is never removed)."""
        writer = getattr(self, "_writer", None)
        if writer is not None and (writer.commits or not self._released):
            return
        files.remove_side_files(self._created)

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        records: Sequence[Record],
        on_done: DoneCallback,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        """Queue a batch for the writer; ``on_done`` runs on the journal's callbacks thread
        once the batch committed (or failed), in the order of the appends.

        Raises:
            RuntimeClosed: The journal was closed. (After :meth:`kill` the batch is silently
                dropped instead, as a dead process would.)
        """
        # A copy: the caller may reuse its list.
        self._writer.put(Batch(tuple(records), on_done, snapshot))

    def append_unawaited(
        self,
        records: Sequence[Record],
        on_done: DoneCallback,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        """Queue a batch nobody waits for: the writer holds a group of only such batches back
        for up to :data:`~.writer.UNAWAITED_WAIT` seconds, until an awaited one joins it."""
        self._writer.put(Batch(tuple(records), on_done, snapshot, unawaited=True))

    def append_and_wait(
        self, records: Sequence[Record], *, snapshot: Snapshot | None = None
    ) -> None:
        """Blocking append; raises the commit's error.

        Raises:
            RuntimeError: Called from an append callback, where it would wait for itself.
        """
        if threading.current_thread() in (self._writer.thread, self._writer.callbacks):
            raise RuntimeError(
                "append_and_wait() in an append callback would deadlock; use append()"
            )
        super().append_and_wait(records, snapshot=snapshot)

    @property
    def is_open(self) -> bool:
        return self._writer.state == "open"

    @property
    def stats(self) -> JournalStats:
        """Counts since open; ``syncs`` counts commits under ``synchronous="full"`` (WAL mode
        syncs at each commit then; under ``"normal"`` only at checkpoints, not counted)."""
        return self._writer.stats

    @property
    def commits(self) -> int:
        """Transactions committed so far (group commit makes this far less than appends)."""
        return self._writer.commits

    @property
    def fault(self) -> Callable[[Sequence[Record]], None] | None:
        """A test hook: called by the writer before each batch; raising fails that group."""
        return self._writer.fault

    @fault.setter
    def fault(self, hook: Callable[[Sequence[Record]], None] | None) -> None:
        self._writer.fault = hook

    def set_max_page_count(self, pages: int) -> int:
        """Cap the file at ``pages`` pages, to provoke "disk full"; returns the cap in effect.

        A test hook. SQLite never sets the cap below the file's size, so ``1`` caps it at its
        current size. The cap belongs to the writer's connection, hence this method.
        """
        with self._writer.guard:  # the writer holds it for each transaction
            if self._released:
                raise RuntimeClosed(f"journal {self.path!r} is closed")
            row = self._writer.conn.execute(f"PRAGMA max_page_count = {int(pages)}").fetchone()
        return int(row[0])

    # -- reading -------------------------------------------------------------------------------

    @property
    def read_chunk(self) -> int:
        """Rows per query of :meth:`read_prefix`: bounds its memory and each hold of the lock."""
        return self._reader.read_chunk

    @read_chunk.setter
    def read_chunk(self, rows: int) -> None:
        self._reader.read_chunk = rows

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        return self._reader.read(stream, after, limit)

    def read_prefix(self, prefix: str) -> Iterator[Record]:
        """Every record of the matching streams, by stream then seq, read lazily in chunks.

        Each chunk is its own read, so records committed while iterating may or may not show.
        """
        return self._reader.read_prefix(prefix)

    def read_open(self, prefix: str) -> Iterator[tuple[str, list[Record]]]:
        return self._reader.read_open(prefix)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        return self._reader.read_all(after, limit)

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        return self._reader.read_caused(saga_id, after)

    def latest(self, streams: Iterable[str]) -> dict[str, Record]:
        return self._reader.latest(streams)

    def open_streams(self, prefix: str) -> list[str]:
        return self._reader.stream_names(prefix, open_only=True)

    def streams(self, prefix: str) -> list[str]:
        return self._reader.stream_names(prefix, open_only=False)

    def last_seq(self, stream: str) -> int:
        return self._reader.last_seq(stream)

    def load_snapshot(self, stream: str) -> Snapshot | None:
        return self._reader.load_snapshot(stream)

    # -- the sagas table -----------------------------------------------------------------------

    def sagas(self, query: SagaQuery) -> list[SagaRow]:
        return sagas.find(self._reader, query)

    def saga_row(self, saga_id: str) -> SagaRow | None:
        return sagas.one(self._reader, saga_id)

    def saga_counts(self) -> dict[str, int]:
        return sagas.counts(self._reader)

    def prunable(self, before: float, keep: int, limit: int) -> list[str]:
        return sagas.prunable(self._reader, before, keep, limit)

    def prune(self, saga_ids: Sequence[str], *, keep_summary: bool = True) -> int:
        return sagas.prune(self._writer, saga_ids, keep_summary=keep_summary)

    def reclaim(self) -> int:
        return sagas.reclaim(self._writer)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, answer it, stop both threads, release the file. Idempotent.

        Called from an append callback, it returns before the last answers are given; the
        file is released right after them."""
        self._writer.close()

    def kill(self) -> None:
        """Stop as ``kill -9`` would: queued batches are dropped and never answered."""
        if not self._released:
            self._writer.die()
        self._writer.finish()

    def _release(self) -> None:
        with self._release_lock, self._reader.lock, self._writer.guard:
            if self._released:
                return
            self._released = True
            self._reader.closed = True
            self._reader.conn.close()
            self._writer.conn.close()
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __repr__(self) -> str:
        state = getattr(getattr(self, "_writer", None), "state", "opening")
        return f"SqliteJournal({self.path!r}, state={state!r})"
