"""A journal's side of its lease: the active runtime's heartbeat, a standby's wait for the
lease, taking it over, and being fenced. The SQL is in :mod:`.lease`.

:class:`LeaseKeeper` runs the two loops; :class:`Leased` is the part of
:class:`~.journal.PostgresJournal` they call back into (a base class of it, kept here so
the journal's module stays about writing).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import psycopg
from psycopg_pool import ConnectionPool

from sagactor.errors import JournalError, JournalFenced, JournalLocked
from sagactor.persistence.journal import write_error

from . import lease as lease_module
from . import sagas
from .schema import Connection, lock_key, prepare

__all__ = ["LeaseKeeper", "Leased"]

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the lease every third of its length; or, for a standby, looks for it to be free
    every ``poll`` seconds (a quarter of its length, at most a quarter of a second)."""

    def __init__(
        self,
        name: str,
        ttl: float,
        *,
        renew: Callable[[], bool | None],
        take: Callable[[], bool],
    ) -> None:
        self._name = name
        self.ttl = ttl
        self.poll = min(0.25, ttl / 4)
        self._renew = renew  # True: renewed; False: fenced; None: the server was not reached
        self._take = take
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def keep(self, on_fenced: Callable[[], None]) -> None:
        """Start the heartbeat; ``on_fenced`` runs (once, on its thread) if the lease is lost."""

        def beat() -> None:
            while not self._stop.wait(self.ttl / 3):
                renewed = self._renew()
                if renewed is False:
                    on_fenced()
                    return

        self._spawn(beat, "heartbeat")

    def wait(self, on_taken: Callable[[], None]) -> None:
        """Start waiting for the lease; ``on_taken`` runs on the waiting thread once it is ours."""

        def look() -> None:
            while not self._stop.wait(self.poll):
                if self._take():
                    on_taken()
                    return

        self._spawn(look, "standby")

    def _spawn(self, target: Callable[[], None], role: str) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                log.exception("journal %r: the lease's %s thread failed", self._name, role)

        thread = threading.Thread(target=guarded, name=f"sagactor-{role}:{self._name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self, *, wait: bool = True) -> None:
        """Stop both loops; wait for them (not for the calling thread itself) if ``wait``."""
        self._stop.set()
        for thread in self._threads if wait else ():
            if thread is not threading.current_thread():
                thread.join()


class Leased:
    """The lease-holding part of the PostgreSQL journal (see :mod:`.journal`)."""

    path: str
    schema: str
    owner: str
    token: int | None
    lock_wait: float
    on_promoted: Callable[[], None] | None
    on_fenced: Callable[[JournalFenced], None] | None
    _fenced: JournalFenced | None
    _keeper: LeaseKeeper
    _cond: threading.Condition
    _queue: collections.deque[Any]
    _state: Literal["open", "closing", "killed"]
    _wconn: Connection
    _writer: threading.Thread
    _pool: ConnectionPool[Connection]
    _sync: str

    open_wait: float
    _url: str

    def connect(self, role: str) -> Connection:
        raise NotImplementedError

    def _held(self) -> int:
        raise NotImplementedError

    @property
    def role(self) -> Literal["active", "standby"]:
        """``active`` while this journal holds the lease and writes; ``standby`` otherwise."""
        return "standby" if self.token is None else "active"

    def wait_for_lease(self) -> None:
        """As a standby, start looking for the lease (``on_promoted`` runs once it is ours)."""
        if self.token is None:
            self._keeper.wait(self._promoted)

    def _activate(self, token: int) -> None:
        self.token = token
        self._writer.start()
        self._keeper.keep(lambda: self._fence(JournalFenced(token, None)))

    def _promoted(self) -> None:
        log.info("journal %r: took the lease over (token %s)", self.path, self.token)
        if self.on_promoted is not None:
            self.on_promoted()

    def _take(self) -> bool:
        """A standby's look at the lease, on its writer connection (made again if lost)."""
        with self._cond:
            if self._state != "open":
                return False
            try:
                if self._wconn.broken or self._wconn.closed:
                    self._wconn = self.connect("writer")
                    self._wconn.execute(f"SET synchronous_commit = {self._sync}")
                token = lease_module.try_acquire(
                    self._wconn, self.schema, self.owner, self._keeper.ttl
                )
            except psycopg.Error as error:
                log.warning("journal %r: standby cannot look at the lease: %s", self.path, error)
                return False
            if token is None:
                return False
            self._set_session_limits(self._wconn)
            self._activate(token)
        return True

    def _renew(self) -> bool | None:
        token = self.token
        assert token is not None  # the heartbeat runs only while active
        try:
            with self._pool.connection(timeout=self._keeper.ttl) as conn:
                return lease_module.renew(conn, self.schema, token, self._keeper.ttl)
        except psycopg.Error as error:
            log.warning("journal %r: cannot renew the lease: %s", self.path, error)
            return None

    def _fence(self, error: JournalFenced) -> None:
        with self._cond:
            if self._fenced is not None:
                return
            self._fenced = error
        log.error("journal %r: %s", self.path, error)
        if self.on_fenced is not None:
            self.on_fenced(error)

    def _first_take(self, conn: Connection, standby: bool, owner: str) -> int | None:
        deadline = time.monotonic() + self.lock_wait
        while True:
            token = lease_module.try_acquire(conn, self.schema, owner, self._keeper.ttl)
            if token is not None or standby:
                return token
            if time.monotonic() >= deadline:
                raise JournalLocked(self.path)
            time.sleep(0.05)

    def _set_session_limits(self, conn: Connection) -> None:
        """A writer paused inside a group (SIGSTOP) would hold the lease's row forever and
        keep a standby from taking over: the server ends such a session after the lease."""
        ms = max(1, round(self._keeper.ttl * 1000))
        conn.execute(f"SET idle_in_transaction_session_timeout = {ms}")

    def _open_writer(
        self, create: bool, standby: bool, owner: str
    ) -> tuple[Connection, int | None]:
        """The writer's connection and, unless another runtime holds the lease, its token."""
        conn = self.connect("writer")
        try:
            (encoding,) = _one(conn, "SHOW server_encoding")
            if isinstance(encoding, bytes):  # an SQL_ASCII database gives bytes for text
                encoding = encoding.decode("ascii", "replace")
            if encoding != "UTF8":
                raise JournalError(
                    f"journal {self.path!r}: the database's encoding is {encoding}, not UTF8"
                )
            self._lock(conn, self.open_wait)
            try:
                prepare(conn, self.schema, self.path, create=create, backfill=sagas.backfill)
                token = self._first_take(conn, standby, owner)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", lock_key(self.schema))
            conn.execute(f"SET synchronous_commit = {self._sync}")
            if token is not None:
                self._set_session_limits(conn)
        except psycopg.Error as error:
            conn.close()
            raise JournalError(f"journal {self.path!r}: cannot open: {error}") from error
        except BaseException:
            conn.close()
            raise
        return conn, token

    def _lock(self, conn: Connection, wait: float) -> None:
        """The opening lock (see :func:`.schema.lock_key`): opens are made one at a time."""
        deadline = time.monotonic() + wait
        while not _one(conn, "SELECT pg_try_advisory_lock(%s, %s)", lock_key(self.schema))[0]:
            if time.monotonic() >= deadline:
                raise JournalLocked(self.path)
            time.sleep(0.02)

    def _reconnect(self) -> None:
        """After the writer's connection was lost: connect again and hold the token's lock
        again (the old one went with the connection). A runtime that took the lease over
        meanwhile is found by the group's own check (:class:`JournalFenced`).

        Raises:
            JournalWriteError: No connection.
        """
        with contextlib.suppress(psycopg.Error):
            self._wconn.close()
        try:
            conn = self.connect("writer")
            try:
                lease_module.relock(conn, self.schema, self._held())
                conn.execute(f"SET synchronous_commit = {self._sync}")
                self._set_session_limits(conn)
            except BaseException:
                conn.close()
                raise
        except (JournalError, psycopg.Error) as error:
            raise write_error(
                f"lost the connection to PostgreSQL, and then: {error}", error
            ) from error
        log.warning("journal %r: the writer reconnected after losing its connection", self.path)
        self._wconn = conn


def _one(conn: Connection, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    assert row is not None  # every query passed here returns one row
    return row
