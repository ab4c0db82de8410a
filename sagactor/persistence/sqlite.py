"""The SQLite journal: one WAL file, one writer thread that commits appends in groups.

Appends are queued and return at once; the writer drains the queue, writes every queued batch
in one transaction (one fsync for all of them), then answers each appender in order. Each batch
sits in its own savepoint, so a batch refused for a sequence conflict leaves the others of the
group intact, while an I/O failure fails the whole group and nothing of it is kept. Reads go
through a separate connection and see committed data only.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import sqlite_utils

from sagactor.crashpoints import SimulatedCrash
from sagactor.errors import (
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalWriteError,
    RuntimeClosed,
)
from sagactor.persistence.journal import DoneCallback, Journal, Record, Snapshot, StreamConflict

__all__ = ["SCHEMA_VERSION", "SqliteJournal"]

SCHEMA_VERSION: Final = 2
"""1: the first format. 2: adds the ``events_cause`` index (a saga's history); a version-1 file
is upgraded in place when opened."""
APPLICATION_ID: Final = 0x53414741  # "SAGA", in the file header, for `file(1)` and friends
_APP_NAME: Final = "sagactor"
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_MAX_GROUP: Final = 1000  # batches per transaction: bounds the blast radius of one failure
_SIDE_FILES: Final = ("-wal", "-shm", ".lock")
_CORRUPT_CODES: Final = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

log = logging.getLogger(__name__)

# The events table, also used to check an existing file's table (SQLite's names for the types).
_EVENTS: Final[dict[str, type]] = dict(
    zip(
        ["position", "stream", "seq", "type", "data", "ts", "cause", "final"],
        [int, str, int, str, bytes, float, str, int],
        strict=True,
    )
)
_SQL_TYPES: Final = {int: "INTEGER", str: "TEXT", bytes: "BLOB", float: "REAL"}
_SELECT: Final = "SELECT position, stream, seq, type, data, ts, cause, final FROM events"
_INSERT: Final = (
    "INSERT INTO events (stream, seq, type, data, ts, cause, final) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_STREAM: Final = (
    "INSERT INTO streams (stream, last_seq, final) VALUES (?, ?, ?) "
    "ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq, final = excluded.final"
)
# What one saga caused in every stream (``Journal.read_caused``): version 2 of the schema.
_CAUSE_INDEX: Final = "CREATE INDEX IF NOT EXISTS events_cause ON events (cause)"
_UPSERT_SNAPSHOT: Final = (
    "INSERT INTO snapshots (stream, seq, data) VALUES (?, ?, ?) "
    "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, data = excluded.data"
)


@dataclass(slots=True)
class _Batch:
    records: Sequence[Record]
    on_done: DoneCallback
    snapshot: Snapshot | None


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
            raise ValueError(f"synchronous must be 'full', 'normal' or 'off', not {synchronous!r}")
        if self.path == "":
            raise ValueError("journal path is empty")
        memory = self.path == ":memory:"
        if durable and (memory or synchronous == "off"):
            what = "':memory:'" if memory else "synchronous='off'"
            raise ValueError(
                f"{what} loses acknowledged appends on a crash; pass durable=False to accept that"
            )
        if sqlite3.sqlite_version_info < (3, 37):
            raise JournalError(f"SQLite {sqlite3.sqlite_version} is too old (3.37+ needed)")
        # A test hook: called by the writer before each batch; raising fails that group.
        self.fault: Callable[[Sequence[Record]], None] | None = None
        self.commits = 0
        """Transactions committed so far (group commit makes this far less than appends)."""

        self._busy_ms = int(busy_timeout * 1000)
        self._lock_fd: int | None = None
        self._read_lock = threading.RLock()
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[_Batch] = collections.deque()
        self._state: Literal["open", "closing", "killed"] = "open"
        self._released = False
        # What a refused open may remove again: only the side files it created itself.
        self._created = (
            [] if memory else [f"{self.path}{s}" for s in _SIDE_FILES if not _exists(self.path + s)]
        )
        has_schema = False
        if not memory:
            # Judge an existing file before anything (even the lock file) is written.
            try:
                has_schema = self._inspect()
            except BaseException:
                self.remove_side_files()  # a WAL-mode file read-only leaves -wal and -shm
                raise
            self._lock_fd = _acquire_lock(self.path)
        try:
            self._wconn = self._connect(self.path)
        except BaseException:
            self._unlock()
            self.remove_side_files()
            raise
        try:
            if not memory:
                # Read the file again under the lock: another process may have changed it.
                has_schema = self._inspect()
                self._wconn.execute("PRAGMA journal_mode = WAL")
            self._wconn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            if not has_schema:
                self._create_schema()
            else:
                self._upgrade()
            if memory:
                # Two connections to ":memory:" are two databases: share the writer's, and
                # keep readers out while a transaction is open.
                self._rconn = self._wconn
                self._write_guard = self._read_lock
            else:
                self._rconn = self._connect(self.path)
                self._rconn.execute("PRAGMA query_only = ON")
                self._write_guard = threading.RLock()
        except BaseException as error:
            self._wconn.close()
            self._unlock()
            self.remove_side_files()
            if isinstance(error, sqlite3.Error):
                raise _read_error(self.path, "cannot open", error) from error
            raise
        self._writer = threading.Thread(
            target=self._run, name=f"sagactor-journal-writer:{self.path}", daemon=True
        )
        self._writer.start()

    # -- opening -------------------------------------------------------------------------------

    def remove_side_files(self) -> None:
        """After a refused open: delete the ``-wal``, ``-shm`` and ``.lock`` files this journal
        created, so the file is left as it was found. Only once it is closed, and only if it
        committed nothing (a WAL holding its commits is never removed)."""
        if self.commits or not (self._released or self._lock_fd is None):
            return
        for name in self._created:
            if name.endswith(".lock"):
                _remove_lock(name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(name)

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=uri)
        except sqlite3.Error as error:
            raise _read_error(self.path, "cannot open", error) from error
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        return conn

    def _inspect(self) -> bool:
        """Whether the file holds our schema; raises if it holds anything else.

        Uses a read-only connection, so a refused file is left exactly as it was (a writable
        one could, for instance, checkpoint a foreign WAL into it on close).
        """
        try:
            with open(self.path, "rb") as file:
                head = file.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            return False
        except IsADirectoryError as error:
            raise JournalError(f"journal {self.path!r}: is a directory") from error
        if not head:
            return False
        if head != _SQLITE_MAGIC:
            raise JournalCorrupt(
                self.path, "not an SQLite database (the file has no SQLite header)"
            )
        conn = self._connect(Path(self.path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            objects = conn.execute(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchall()
            if not objects and not app_id:
                return False  # an empty SQLite file: ours to fill
            self._verify_schema(conn, app_id, {name for kind, name in objects if kind == "table"})
            return True
        except sqlite3.DatabaseError as error:
            damaged = (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT_CODES
            detail = f": the file is damaged ({error})" if damaged else f" ({error})"
            raise JournalCorrupt(self.path, f"not a readable SQLite database{detail}") from error
        finally:
            conn.close()

    def _verify_schema(self, conn: sqlite3.Connection, app_id: int, tables: set[str]) -> None:
        meta: dict[str, Any] = {}
        if "meta" in tables:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("application_id") != _APP_NAME or app_id != APPLICATION_ID:
            listing = ", ".join(sorted(tables)) or "none"
            raise JournalCorrupt(
                self.path,
                f"not a sagactor journal (application_id {app_id:#x}, tables: {listing})",
            )
        version = meta.get("schema_version")
        if type(version) is not int:
            raise JournalCorrupt(self.path, f"schema_version is {version!r}, not an integer")
        if version > SCHEMA_VERSION:
            raise JournalCorrupt(
                self.path,
                f"written by a newer sagactor (schema version {version}, this sagactor reads "
                f"up to {SCHEMA_VERSION}); upgrade sagactor to open it",
            )
        missing = {"events", "streams", "snapshots"} - tables
        if missing:
            raise JournalCorrupt(self.path, f"missing table(s) {', '.join(sorted(missing))}")
        strict = {row[1]: row[5] for row in conn.execute("PRAGMA table_list")}
        columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(events)")}
        expected = {name: _SQL_TYPES[kind] for name, kind in _EVENTS.items()}
        if columns != expected or not strict.get("events"):
            # Only a STRICT table guarantees the column types the readers rely on.
            raise JournalCorrupt(self.path, f"events table is malformed (columns {columns})")

    def _create_schema(self) -> None:
        conn = self._wconn
        db = sqlite_utils.Database(conn, execute_plugins=False)
        conn.execute("BEGIN IMMEDIATE")
        try:
            db.create_table(
                "events",
                _EVENTS,
                pk="position",
                not_null=[name for name in _EVENTS if name != "position"],
                strict=True,
            )
            # Unique (stream, seq) is the optimistic-concurrency backstop and the read index.
            db.table("events").create_index(["stream", "seq"], "events_stream_seq", unique=True)
            conn.execute(_CAUSE_INDEX)
            db.create_table(
                "streams",
                {"stream": str, "last_seq": int, "final": int},
                pk="stream",
                not_null=["last_seq", "final"],
                strict=True,
            )
            # Recovery asks for the few open streams among many finished ones: index only those.
            conn.execute("CREATE INDEX streams_open ON streams (stream) WHERE final = 0")
            db.create_table(
                "snapshots",
                {"stream": str, "seq": int, "data": bytes},
                pk="stream",
                not_null=["seq", "data"],
                strict=True,
            )
            db.create_table("meta", {"key": str, "value": "ANY"}, pk="key", strict=True)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("schema_version", SCHEMA_VERSION), ("application_id", _APP_NAME)],
            )
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _upgrade(self) -> None:
        """Bring a file written by an older sagactor to :data:`SCHEMA_VERSION` (under the lock,
        in one transaction: a crash leaves the old version, which upgrades at the next open)."""
        conn = self._wconn
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version >= SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_CAUSE_INDEX)  # version 1 -> 2
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,)
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("journal %r: schema version %s upgraded to %s", self.path, version, SCHEMA_VERSION)

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        records: Sequence[Record],
        on_done: DoneCallback,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        """Queue a batch for the writer; ``on_done`` runs on the writer thread after commit.

        Raises:
            RuntimeClosed: The journal was closed. (After :meth:`kill` the batch is silently
                dropped instead, as a dead process would.)
        """
        with self._cond:
            if self._state == "killed":
                return
            if self._state == "closing":
                raise RuntimeClosed(f"journal {self.path!r} is closed")
            # A copy: the caller may reuse its list, and the writer reads it twice.
            self._queue.append(_Batch(tuple(records), on_done, snapshot))
            self._cond.notify()

    def append_and_wait(
        self, records: Sequence[Record], *, snapshot: Snapshot | None = None
    ) -> None:
        """Blocking append; raises the commit's error.

        Raises:
            RuntimeError: Called from an append callback, where it would wait for itself.
        """
        if threading.current_thread() is self._writer:
            raise RuntimeError(
                "append_and_wait() in an append callback would deadlock; use append()"
            )
        super().append_and_wait(records, snapshot=snapshot)

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    def set_max_page_count(self, pages: int) -> int:
        """Cap the file at ``pages`` pages, to provoke "disk full"; returns the cap in effect.

        A test hook. SQLite never sets the cap below the file's size, so ``1`` caps it at its
        current size. The cap belongs to the writer's connection, hence this method.
        """
        with self._write_guard:  # the writer holds it for each transaction
            if self._released:
                raise RuntimeClosed(f"journal {self.path!r} is closed")
            row = self._wconn.execute(f"PRAGMA max_page_count = {int(pages)}").fetchone()
        return int(row[0])

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and self._state == "open":
                        self._cond.wait()
                    if self._state == "killed" or not self._queue:
                        return
                    count = min(len(self._queue), _MAX_GROUP)
                    items = [self._queue.popleft() for _ in range(count)]
                self._process(items)
        except SimulatedCrash:
            self._die()  # a crash point fired on this thread: the process is "dead"
        except BaseException:
            log.exception("journal %r: writer thread died", self.path)
            self._die()
        finally:
            self._release()

    def _process(self, batches: list[_Batch]) -> None:
        results = self._commit(batches)
        for batch, result in zip(batches, results, strict=True):
            if self._state == "killed":
                return  # a dead process answers nobody
            self._answer(batch, result)

    def _commit(self, batches: list[_Batch]) -> list[BaseException | None]:
        conn = self._wconn
        results: list[BaseException | None] = [None] * len(batches)
        with self._write_guard:
            try:
                conn.execute("BEGIN IMMEDIATE")
                last: dict[str, int] = {}  # this group's view of each stream's last seq
                for index, batch in enumerate(batches):
                    if self._state == "killed":
                        break
                    if self.fault is not None:
                        self.fault(batch.records)
                    results[index] = self._write_batch(conn, batch, last)
                if self._state == "killed":
                    conn.execute("ROLLBACK")  # killed mid-group: like a crash before COMMIT
                    return results
                conn.execute("COMMIT")
                self.commits += 1
            except SimulatedCrash:
                self._rollback()
                raise
            except Exception as error:  # noqa: BLE001 - a fault hook may raise anything; stay alive
                self._rollback()
                name = getattr(error, "sqlite_errorname", type(error).__name__)
                log.warning(
                    "journal %r: commit of %d batch(es) failed: %s", self.path, len(batches), error
                )
                return [_write_error(f"{name}: {error}", error) for _ in batches]
        return results

    def _write_batch(
        self, conn: sqlite3.Connection, batch: _Batch, last: dict[str, int]
    ) -> BaseException | None:
        """Write one batch in the group's transaction; return its own failure, if any.

        Failures of the batch's own making (a taken seq, an unstorable value) undo just the
        batch; database failures (I/O, disk full, busy) propagate, to fail the whole group.
        """
        conn.execute("SAVEPOINT batch")
        try:
            ends = _stream_ends(conn, batch.records, last)
            if isinstance(ends, StreamConflict):
                raise ends
            now = time.time()
            conn.executemany(
                _INSERT,
                [
                    (r.stream, r.seq, r.type, r.data, r.ts or now, r.cause, 1 if r.final else 0)
                    for r in batch.records
                ],
            )
            conn.executemany(_UPSERT_STREAM, [(s, *end) for s, end in ends.items()])
            if batch.snapshot is not None:
                snap = batch.snapshot
                conn.execute(_UPSERT_SNAPSHOT, (snap.stream, snap.seq, snap.data))
        except Exception as error:
            if _fails_group(error):
                raise
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            if isinstance(error, StreamConflict):
                return error
            if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
                return StreamConflict(batch.records[0].stream, batch.records[0].seq)
            return _write_error(f"batch refused: {error!r}", error)
        conn.execute("RELEASE batch")
        last.update((s, end[0]) for s, end in ends.items())
        return None

    def _rollback(self) -> None:
        # After SQLITE_FULL or an I/O error SQLite may already have rolled back on its own.
        try:
            if self._wconn.in_transaction:
                self._wconn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("journal %r: rollback failed", self.path)

    def _answer(self, batch: _Batch, result: BaseException | None) -> None:
        try:
            batch.on_done(result)
        except SimulatedCrash:
            raise
        except Exception:
            # The callback's owner must not take the writer (and every other appender) down.
            log.exception("journal %r: append callback raised", self.path)

    # -- reading -------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._read_lock:
            if self._released:
                raise RuntimeClosed(f"journal {self.path!r} is closed")
            try:
                return self._rconn.execute(sql, params).fetchall()
            except sqlite3.Error as error:  # a damaged page, an I/O error
                raise _read_error(self.path, "cannot be read", error) from error

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        rows = self._rows(
            f"{_SELECT} WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
            (stream, after, -1 if limit is None else limit),
        )
        return [_record(row) for row in rows]

    read_chunk = 4096
    """Rows per query of :meth:`read_prefix`: bounds its memory and each hold of the read lock."""

    def read_prefix(self, prefix: str) -> Iterator[Record]:
        """Every record of the matching streams, by stream then seq, read lazily in chunks.

        Each chunk is its own read, so records committed while iterating may or may not show.
        """
        upper = _upper_bound(prefix)
        sql = f"{_SELECT} WHERE (stream, seq) > (?, ?)"
        sql += " AND stream < ?" if upper is not None else ""
        sql += " ORDER BY stream, seq LIMIT ?"
        stream, seq = prefix, 0
        while True:
            params = (
                (stream, seq, upper, self.read_chunk)
                if upper is not None
                else (stream, seq, self.read_chunk)
            )
            rows = self._rows(sql, params)
            for row in rows:
                yield _record(row)
            if len(rows) < self.read_chunk:
                return
            stream, seq = rows[-1][1], rows[-1][2]

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        rows = self._rows(
            f"{_SELECT} WHERE position > ? ORDER BY position LIMIT ?",
            (after, -1 if limit is None else limit),
        )
        return [_record(row) for row in rows]

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        prefix = f"{saga_id}/"
        upper = _upper_bound(prefix)
        assert upper is not None  # the prefix ends with "/", which has a successor
        rows = self._rows(
            # "+position": a term the planner cannot answer from the primary key, so it takes
            # the cause index (a few rows) instead of scanning every position above ``after``.
            f"{_SELECT} WHERE cause >= ? AND cause < ? AND +position > ? ORDER BY position",
            (prefix, upper, after),
        )
        return [_record(row) for row in rows]

    latest_chunk = 500
    """Streams per query of :meth:`latest` (SQLite caps the number of parameters)."""

    def latest(self, streams: Iterable[str]) -> dict[str, Record]:
        names = list(dict.fromkeys(streams))
        found: dict[str, Record] = {}
        for start in range(0, len(names), self.latest_chunk):
            chunk = names[start : start + self.latest_chunk]
            marks = ", ".join("?" * len(chunk))
            rows = self._rows(
                f"{_SELECT} WHERE (stream, seq) IN "
                f"(SELECT stream, last_seq FROM streams WHERE stream IN ({marks}))",
                chunk,
            )
            found.update((row[1], _record(row)) for row in rows)
        return found

    def open_streams(self, prefix: str) -> list[str]:
        return self._stream_names(prefix, "final = 0")

    def streams(self, prefix: str) -> list[str]:
        return self._stream_names(prefix, "1")

    def _stream_names(self, prefix: str, condition: str) -> list[str]:
        upper = _upper_bound(prefix)
        bounds = "stream >= ?" + (" AND stream < ?" if upper is not None else "")
        params = (prefix,) if upper is None else (prefix, upper)
        sql = f"SELECT stream FROM streams WHERE {condition} AND {bounds} ORDER BY stream"
        return [name for (name,) in self._rows(sql, params)]

    def last_seq(self, stream: str) -> int:
        rows = self._rows("SELECT last_seq FROM streams WHERE stream = ?", (stream,))
        return int(rows[0][0]) if rows else 0

    def load_snapshot(self, stream: str) -> Snapshot | None:
        rows = self._rows("SELECT stream, seq, data FROM snapshots WHERE stream = ?", (stream,))
        return Snapshot(*rows[0]) if rows else None

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the writer, release the file. Idempotent."""
        with self._cond:
            if self._state == "open":
                self._state = "closing"
            self._cond.notify_all()
        self._finish()

    def kill(self) -> None:
        """Stop as ``kill -9`` would: queued batches are dropped and never answered."""
        self._die()
        self._finish()

    def _die(self) -> None:
        with self._cond:
            if not self._released:
                self._state = "killed"
            self._cond.notify_all()

    def _finish(self) -> None:
        # Called from a callback on the writer thread, the writer releases when it exits.
        if threading.current_thread() is not self._writer:
            self._writer.join()
            self._release()

    def _release(self) -> None:
        with self._read_lock, self._write_guard:
            if self._released:
                return
            self._released = True
            self._rconn.close()
            self._wconn.close()
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r}, state={self._state!r})"


def _record(row: tuple[Any, ...]) -> Record:
    # The events table is STRICT and NOT NULL (checked at open), so the types are right.
    position, stream, seq, type_, data, ts, cause, final = row
    return Record(stream, seq, type_, data, ts, cause, final != 0, position)


def _stream_ends(
    conn: sqlite3.Connection, records: Sequence[Record], last: dict[str, int]
) -> dict[str, tuple[int, int]] | StreamConflict:
    """Each stream's (last seq, final) after the batch, or the conflict that refuses it.

    ``last`` holds seqs written earlier in the same, not yet committed, group.
    """
    ends: dict[str, tuple[int, int]] = {}
    for record in records:
        stream = record.stream
        previous = ends[stream][0] if stream in ends else last.get(stream)
        if previous is None:
            row = conn.execute(
                "SELECT last_seq FROM streams WHERE stream = ?", (stream,)
            ).fetchone()
            previous = 0 if row is None else int(row[0])
        if record.seq != previous + 1:
            return StreamConflict(stream, record.seq)
        ends[stream] = (record.seq, 1 if record.final else 0)
    return ends


def _fails_group(error: Exception) -> bool:
    """True for errors of the database (I/O, full, busy), not of one batch's values."""
    return isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError
    )


def _write_error(problem: str, cause: BaseException) -> JournalWriteError:
    error = JournalWriteError(problem)
    error.__cause__ = cause
    return error


def _upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (None: no bound)."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000  # surrogates cannot be stored; skip past them
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def _acquire_lock(path: str) -> int:
    """Hold ``<path>.lock`` exclusively; the OS drops the lock when the process dies.

    A lock file may be removed by its holder (:func:`_remove_lock`): a lock taken on a file
    that is no longer at its path is let go, and taken again on the one there now.
    """
    name = f"{path}.lock"
    while True:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise JournalError(f"journal {path!r}: cannot create its lock file: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, name):
                return fd
        except BlockingIOError:
            os.close(fd)
            raise JournalLocked(path) from None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _remove_lock(name: str) -> None:
    """Delete a lock file, holding its lock meanwhile (else leave it: someone holds it)."""
    try:
        fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, name):
            os.remove(name)
    except OSError:
        pass  # held by another journal, or already gone: not ours to remove
    finally:
        os.close(fd)


def _same_file(fd: int, name: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(name))
    except FileNotFoundError:
        return False


def _exists(name: str) -> bool:
    return os.path.lexists(name)


def _read_error(path: str, what: str, error: sqlite3.Error) -> JournalError:
    """A damaged file is :class:`JournalCorrupt`; any other failure a :class:`JournalError`."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code in _CORRUPT_CODES:
        return JournalCorrupt(path, f"{what}: the file is damaged ({error})")
    return JournalError(f"journal {path!r}: {what}: {error}")
