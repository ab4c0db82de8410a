"""Sagas a standby asked the active runtime to start: the ``starts`` table, and its wake-up.

A standby's ``start`` inserts one row per saga (its id chosen by the standby, its input
encoded) and notifies the channel in the same transaction: once that commits the start is
durable, and whichever runtime is active (now, or after a takeover) starts it. The active one
LISTENs (a row costs it a notification, not a poll) and also polls, in case a notification
was missed across a reconnection. A row is deleted once its saga is journaled; a start the
active runtime refuses (an id taken by another input, an unknown saga) keeps its row with the
error, which the standby's handle raises. Taking a row twice (a takeover between the saga's
start and the row's deletion) is harmless: the saga id is an idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import psycopg

from sagactor.errors import SagactorError

from .schema import Connection

if TYPE_CHECKING:
    from .journal import PostgresJournal

__all__ = ["Request", "StartsQueue"]


class Request(NamedTuple):
    """One saga to start: its row's id, the saga's id, its definition and mode, its input."""

    row: int
    saga_id: str
    saga: str
    version: int
    mode: str
    input: bytes


class StartsQueue:
    """The ``starts`` table of one journal, from either side."""

    def __init__(self, journal: PostgresJournal) -> None:
        self._journal = journal
        self._schema = journal.schema
        self.channel = f"sagactor_starts_{journal.schema}"

    def request(self, requests: Sequence[tuple[str, str, int, str, bytes]]) -> list[int]:
        """Durably ask for these starts (saga id, saga, version, mode, input) and wake the
        active runtime; the requests' row ids."""
        rows: list[int] = []
        with self._journal.reader() as conn, conn.transaction():
            cursor = conn.cursor()
            cursor.executemany(
                f"INSERT INTO {self._schema}.starts (saga_id, saga, version, mode, input) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                list(requests),
                returning=True,
            )
            while True:
                found = cursor.fetchone()
                rows.append(int(found[0]) if found else 0)
                if not cursor.nextset():
                    break
            conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
        return rows

    def fate(self, row: int) -> str | None:
        """A request's fate: ``""`` while it waits, its error if refused, None once started
        (its row is deleted then)."""
        with self._journal.reader() as conn:
            found = conn.execute(
                f"SELECT coalesce(error, '') FROM {self._schema}.starts WHERE id = %s", (row,)
            ).fetchone()
        return None if found is None else str(found[0])

    def refusal(self, saga_id: str) -> str | None:
        """Why the active runtime refused to start ``saga_id``, if it did."""
        with self._journal.reader() as conn:
            row = conn.execute(
                f"SELECT error FROM {self._schema}.starts WHERE saga_id = %s "
                "AND error IS NOT NULL ORDER BY id DESC LIMIT 1",
                (saga_id,),
            ).fetchone()
        return None if row is None else str(row[0])

    def requested(self, saga_id: str) -> bool:
        """Whether a start of ``saga_id`` waits for the active runtime (not refused)."""
        with self._journal.reader() as conn:
            row = conn.execute(
                f"SELECT 1 FROM {self._schema}.starts WHERE saga_id = %s AND error IS NULL LIMIT 1",
                (saga_id,),
            ).fetchone()
        return row is not None

    def listen(self) -> Connection:
        """A connection of its own that hears the channel (the active runtime's)."""
        conn = self._journal.connect("starts")
        conn.execute(f"LISTEN {self.channel}")
        return conn

    def wake(self) -> None:
        """Wake the listener now (it is stopping): else it hears nothing until its poll ends.
        A journal that cannot say it (closed, unreachable) leaves it to the poll."""
        try:
            with self._journal.reader() as conn:
                conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
        except (psycopg.Error, SagactorError):  # a closed pool's error is a psycopg.Error
            pass

    @staticmethod
    def wait(conn: Connection, timeout: float) -> None:
        """Until a notification arrives or ``timeout`` passes."""
        for _ in conn.notifies(timeout=timeout, stop_after=1):
            pass

    def pending(self, conn: Connection, limit: int = 500) -> list[Request]:
        rows = conn.execute(
            f"SELECT id, saga_id, saga, version, mode, input FROM {self._schema}.starts "
            "WHERE error IS NULL ORDER BY id LIMIT %s",
            (limit,),
        ).fetchall()
        return [Request(int(r[0]), r[1], r[2], int(r[3]), r[4], bytes(r[5])) for r in rows]

    def done(self, conn: Connection, rows: Sequence[int]) -> None:
        conn.execute(f"DELETE FROM {self._schema}.starts WHERE id = ANY(%s)", (list(rows),))

    def refuse(self, conn: Connection, row: int, error: str) -> None:
        conn.execute(f"UPDATE {self._schema}.starts SET error = %s WHERE id = %s", (error, row))
