"""The PostgreSQL journal: one writer connection that commits appends in groups, reads from a pool.

The same contract and guarantees as the SQLite journal. Appends are queued and return at once;
the writer thread drains the queue and writes every queued batch in one transaction (one WAL
flush for all of them; decisions nobody waits for may wait 2 ms for company), then answers each
appender in order. Reads go through a
``psycopg_pool`` pool of autocommit connections and see committed data only.

One active writer: the journal's lease (see :mod:`.lease`) names the runtime that writes, and
every group checks its fencing token in its own transaction. A second runtime opening the same
journal is refused with :class:`JournalLocked`, or with ``standby=True`` waits as a standby
(reads only) and takes the lease over when the active one dies, pauses past its lease, or
closes: ``on_promoted`` then runs. A runtime whose lease was taken over is fenced: its groups
fail with :class:`JournalFenced` and ``on_fenced`` runs (the runtime dies).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool

from sagactor.crashpoints import SimulatedCrash
from sagactor.errors import (
    DefinitionError,
    JournalError,
    JournalFenced,
    JournalWriteError,
    NotActive,
    RuntimeClosed,
)
from sagactor.persistence.journal import (
    DoneCallback,
    Journal,
    JournalStats,
    Record,
    Snapshot,
    write_error,
)

from . import lease as lease_module
from . import writes
from .leasing import Leased, LeaseKeeper
from .reads import PoolReads
from .sagas import SagaTable
from .schema import Connection, valid_schema
from .urls import redact, scrub
from .writes import Batch, Unsent, batch_error, write_group, write_one_by_one

__all__ = ["PostgresJournal"]


log = logging.getLogger(__name__)


class PostgresJournal(Leased, PoolReads, SagaTable, Journal):
    """A :class:`Journal` in a PostgreSQL database, safe for any number of appending threads.

    Args:
        url: A libpq connection URL (``postgresql://user:password@host:port/database``) or
            connection string. The database must exist; the journal's tables are made in it.
        create: Make the journal's tables if the database has none; with ``False`` such a
            database is refused.
        synchronous: ``"full"`` acknowledges an append once PostgreSQL has flushed it to its
            WAL (``synchronous_commit = on``); ``"normal"`` once PostgreSQL has it, before the
            flush (``off``): it survives a crash of this process, not one of the server.
        schema: The PostgreSQL schema that holds the journal's tables; one database can hold
            several journals under different schemas.
        pool_size: Connections kept for reads (the writer has its own).
        connect_timeout: Seconds to wait for the server when connecting.
        standby: While another runtime holds the lease, open as its standby (reads only; see
            :attr:`role`) instead of refusing.
        lease: Seconds the lease lasts unless renewed (a heartbeat renews it every third of
            that): how long a paused or cut-off active runtime keeps a standby waiting. A
            killed one frees it at once (its database session ends).

    Raises:
        JournalError: The server cannot be reached (the message names the URL without its
            password), or ``create=False`` and the database holds no journal.
        JournalLocked: Another runtime has this journal open (and ``standby`` is false).
        JournalCorrupt: The schema holds something else, or a journal of a newer sagactor.
    """

    lock_wait = 1.0
    """Seconds an open retries a held lease: the backend of a process killed a moment ago may
    not have noticed yet that its client is gone."""
    open_wait = 10.0
    """Seconds an open waits for another open (or a runtime of sagactor before schema version
    3, which holds the opening lock for its whole life)."""

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        synchronous: Literal["full", "normal"] = "full",
        schema: str = "sagactor",
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        standby: bool = False,
        lease: float = 10.0,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise DefinitionError(
                "PostgresJournal",
                f"synchronous must be 'full' or 'normal', not {synchronous!r}",
                kind="setting",
            )
        if pool_size < 1:
            raise DefinitionError(
                "PostgresJournal", f"pool_size must be at least 1, not {pool_size}", kind="setting"
            )
        if not 0.1 <= lease <= 3600:
            raise DefinitionError(
                "PostgresJournal", f"lease must be 0.1 to 3600 seconds, not {lease}", kind="setting"
            )
        self.path = redact(url)
        self.schema = valid_schema(schema)
        self._url = url
        self._connect_timeout = max(1, round(connect_timeout))
        self._sync = "on" if synchronous == "full" else "off"
        # A test hook: called by the writer before each batch; raising fails that group.
        self.fault: Callable[[Sequence[Record]], None] | None = None
        self.commits = 0
        """Transactions committed so far (group commit makes this far less than appends)."""
        self._batches_written = self._rows_written = 0

        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[Batch] = collections.deque()
        self._state: Literal["open", "closing", "killed"] = "open"
        self._released = False
        self.owner = lease_owner = lease_module.make_owner()
        """This journal's name in the lease (host:pid:random)."""
        self.token: int | None = None
        """The fencing token while active; None for a standby."""
        self.on_promoted: Callable[[], None] | None = None
        """Called (on the standby's thread) once a standby took the lease: it is now active."""
        self.on_fenced: Callable[[JournalFenced], None] | None = None
        """Called once the lease was found taken over; without it, groups fail with the error."""
        self._fenced: JournalFenced | None = None
        self._keeper = LeaseKeeper(self.path, lease, renew=self._renew, take=self._take)
        self._wconn, token = self._open_writer(create, standby, lease_owner)
        try:
            self._pool: ConnectionPool[Connection] = ConnectionPool(
                url,
                kwargs=self._connect_options("reader"),
                min_size=1,
                max_size=pool_size,
                open=True,
                name=f"sagactor-journal:{self.path}",
                num_workers=1,
            )
        except BaseException:
            self._wconn.close()
            raise
        self._writer = threading.Thread(
            target=self._run, name=f"sagactor-journal-writer:{self.path}", daemon=True
        )
        if token is not None:
            self._activate(token)

    # -- opening -------------------------------------------------------------------------------

    def _connect_options(self, role: str) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": self._connect_timeout,
            "application_name": f"sagactor {role}",
        }

    def connect(self, role: str) -> Connection:
        try:
            return psycopg.connect(self._url, **self._connect_options(role))
        except psycopg.Error as error:
            problem = scrub(str(error), self._url)
            raise JournalError(f"journal {self.path!r}: cannot connect: {problem}") from None

    def reader(self) -> contextlib.AbstractContextManager[Connection]:
        """A connection of the reading pool (autocommit), for a ``with`` block."""
        return self._pool.connection()

    # -- writing -------------------------------------------------------------------------------

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        """Queue a batch for the writer; ``on_done`` runs on the writer thread after commit.

        Raises:
            RuntimeClosed: The journal was closed. (After :meth:`kill` the batch is silently
                dropped instead, as a dead process would.)
        """
        self._enqueue(Batch(tuple(records), on_done, snapshot))

    def append_unawaited(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        """Held back a moment to share a commit (see :func:`.writes.hold_for_company`)."""
        self._enqueue(Batch(tuple(records), on_done, snapshot, unawaited=True))

    def _enqueue(self, batch: Batch) -> None:
        with self._cond:
            if self._state == "killed":
                return
            if self._state == "closing":
                raise RuntimeClosed(f"journal {self.path!r} is closed")
            if self.token is None:
                batch.on_done(NotActive("append"))
                return
            self._queue.append(batch)
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

    @property
    def _killed(self) -> bool:  # read again each time: kill() may come from any thread
        return self._state == "killed"

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and self._state == "open":
                        self._cond.wait()
                    writes.hold_for_company(self._queue, self._cond, lambda: self._state == "open")
                    if self._state == "killed" or not self._queue:
                        return
                    count = min(len(self._queue), writes.MAX_GROUP)
                    items = [self._queue.popleft() for _ in range(count)]
                results = self._commit(items)
                for batch, result in zip(items, results, strict=True):
                    if self._killed:
                        return  # a dead process answers nobody
                    self._answer(batch, result)
        except SimulatedCrash:
            self._die()  # a crash point fired on this thread: the process is "dead"
        except BaseException:
            log.exception("journal %r: writer thread died", self.path)
            self._die()
        finally:
            self._release()

    def _commit(self, batches: list[Batch]) -> list[BaseException | None]:
        if self._fenced is not None:
            return [self._fenced] * len(batches)
        try:
            if self.fault is not None:
                for batch in batches:
                    self.fault(batch.records)
            results, committed = self._write(batches)
        except SimulatedCrash:
            self._rollback()
            raise
        except Exception as error:  # noqa: BLE001 - a fault hook may raise anything; stay alive
            self._rollback()
            if isinstance(error, JournalFenced):
                self._fence(error)
            if isinstance(error, JournalWriteError):
                return [error] * len(batches)
            cause = error.__cause__ if isinstance(error, Unsent) and error.__cause__ else error
            problem = f"{type(cause).__name__}: {scrub(str(cause), self._url)}"
            log.warning(
                "journal %r: commit of %d batch(es) failed: %s", self.path, len(batches), problem
            )
            return [write_error(problem, cause) for _ in batches]
        if committed:
            self.commits += 1
            self._batches_written += sum(1 for result in results if result is None)
            self._rows_written += sum(
                len(b.records) for b, result in zip(batches, results, strict=True) if result is None
            )
        return results

    @property
    def stats(self) -> JournalStats:
        """Counts since open; ``syncs`` counts commits under ``synchronous="full"``."""
        syncs = self.commits if self._sync == "on" else 0
        return JournalStats(self.commits, self._batches_written, self._rows_written, syncs)

    def _write(self, batches: list[Batch]) -> tuple[list[BaseException | None], bool]:
        """Write the group; a connection found lost before any of it was sent (a restarted
        server, an idle timeout) is made again, once: nothing of the group is in doubt."""
        for attempt in range(2):
            if self._wconn.broken or self._wconn.closed:
                self._reconnect()
            try:
                return self._write_on(self._wconn, batches)
            except Unsent:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _write_on(
        self, conn: Connection, batches: list[Batch]
    ) -> tuple[list[BaseException | None], bool]:
        try:
            return write_group(
                conn, self.schema, batches, lambda: self._killed, self.summaries, self._held()
            )
        except Exception as error:
            if not batch_error(error):
                raise
        # Some batch holds a value the database refuses: find it, refuse it alone.
        self._rollback()
        return write_one_by_one(
            conn, self.schema, batches, lambda: self._killed, self.summaries, self._held()
        )

    def _held(self) -> int:
        assert self.token is not None  # the writer runs only while active
        return self.token

    def _rollback(self) -> None:
        self.summaries.forget()  # what the failed group folded is read again
        if self._wconn.broken or self._wconn.closed:
            return  # the server rolls back what a lost connection left open
        try:
            self._wconn.execute("ROLLBACK")
        except psycopg.Error:
            log.exception("journal %r: rollback failed", self.path)

    def _answer(self, batch: Batch, result: BaseException | None) -> None:
        try:
            batch.on_done(result)
        except SimulatedCrash:
            raise
        except Exception:
            # The callback's owner must not take the writer (and every other appender) down.
            log.exception("journal %r: append callback raised", self.path)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the writer, give the lease up, close the connections."""
        self._keeper.stop()  # no promotion from now on
        with self._cond:
            if self._state == "open":
                self._state = "closing"
            self._cond.notify_all()
        self._finish()

    def kill(self) -> None:
        """Stop as ``kill -9`` would: queued batches are dropped and never answered, the lease
        is kept until its session ends (which the close of the connection does at once)."""
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
            if self._writer.is_alive():
                self._writer.join()
            self._release()

    def _release(self) -> None:
        with self._cond:
            if self._released:
                return
            self._released = True
            killed = self._state == "killed"
        self._keeper.stop(wait=False)  # the heartbeat may be the thread that waits for us
        self._pool.close()
        token = self.token
        if token is not None and not killed and not (self._wconn.broken or self._wconn.closed):
            # Give the lease up before closing: the server ends the old session a moment after
            # the close, and a runtime that opens the journal at once must find it free.
            with contextlib.suppress(psycopg.Error):
                lease_module.give_up(self._wconn, self.schema, token)
        self._wconn.close()

    def __repr__(self) -> str:
        return f"PostgresJournal({self.path!r}, state={self._state!r})"
