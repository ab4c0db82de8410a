"""The SQLite journal's reads: one connection of their own (``query_only``), so a read sees
committed data only and never waits for the writer's transaction.

A row may hold several records of one append (see :mod:`sagactor.persistence.packing`),
stored under its last record's seq and position: a query for ``seq > after`` (or
``position > after``) finds each row holding a record past ``after``, and the rows are
unpacked here, dropping the records at or before ``after``. A limit counts records; as a row
holds at least one, ``limit`` rows always suffice."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from sagactor.errors import RuntimeClosed
from sagactor.persistence.journal import Record, Snapshot, upper_bound
from sagactor.persistence.packing import unpack

from .schema import COLUMNS, read_error

__all__ = ["Reader", "any_stored", "records", "stored_below", "stored_many"]

_SELECT: Final = f"SELECT {COLUMNS} FROM events"


class Reader:
    """Reads on ``conn``, one at a time under ``lock`` (shared with the writer for
    ``:memory:``, whose one connection is also the writer's)."""

    read_chunk = 4096
    """Rows per query of :meth:`read_prefix`: bounds its memory and each hold of the lock."""
    latest_chunk = 500
    """Streams per query of :meth:`latest` (SQLite caps the number of parameters)."""
    open_chunk = 1000
    """Streams per query of :meth:`read_open`: bounds its memory and each hold of the lock."""

    def __init__(self, path: str, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self.path = path
        self.conn = conn
        self.lock = lock
        self.closed = False

    def rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.lock:
            if self.closed:
                raise RuntimeClosed(f"journal {self.path!r} is closed")
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.Error as error:  # a damaged page, an I/O error
                raise read_error(self.path, "cannot be read", error) from error

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        rows = self.rows(
            f"{_SELECT} WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
            (stream, after, -1 if limit is None else limit),
        )
        found = [r for r in records(rows) if r.seq > after]
        return found if limit is None else found[:limit]

    def read_prefix(self, prefix: str) -> Iterator[Record]:
        """Every record of the matching streams, by stream then seq, read lazily in chunks.

        Each chunk is its own read, so records committed while iterating may or may not show.
        """
        upper = upper_bound(prefix)
        sql = f"{_SELECT} WHERE (stream, seq) > (?, ?)"
        sql += " AND stream < ?" if upper is not None else ""
        sql += " ORDER BY stream, seq LIMIT ?"
        stream, seq = prefix, 0
        while True:
            bound = () if upper is None else (upper,)
            rows = self.rows(sql, (stream, seq, *bound, self.read_chunk))
            yield from records(rows)
            if len(rows) < self.read_chunk:
                return
            stream, seq = rows[-1][1], rows[-1][2]

    def read_open(self, prefix: str) -> Iterator[tuple[str, list[Record]]]:
        """Each open stream under ``prefix`` with its records: range scans of the open
        streams' index joined to the events, :attr:`open_chunk` streams per scan (the partial
        index holds only open streams, in order: no ended stream is visited, nothing sorted
        but each stream's few records)."""
        upper = upper_bound(prefix)
        columns = ", ".join(f"e.{name}" for name in COLUMNS.split(", "))
        scan = (
            f"SELECT {columns} FROM streams AS s INDEXED BY streams_open "
            "CROSS JOIN events AS e ON e.stream = s.stream WHERE s.final = 0 AND {} "
            "ORDER BY s.stream, e.seq"
        )
        start, after = prefix, ">="
        while True:
            # The chunk ends at its open_chunk-th open stream, or at the prefix's end.
            where = f"s.stream {after} ?" + ("" if upper is None else " AND s.stream < ?")
            params = (start,) if upper is None else (start, upper)
            last = self.rows(
                "SELECT s.stream FROM streams AS s INDEXED BY streams_open "
                f"WHERE s.final = 0 AND {where} ORDER BY s.stream LIMIT 1 OFFSET ?",
                (*params, self.open_chunk - 1),
            )
            if last:
                where, params = f"s.stream {after} ? AND s.stream <= ?", (start, last[0][0])
            yield from _grouped(self.rows(scan.format(where), params))
            if not last:
                return
            start, after = last[0][0], ">"

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        rows = self.rows(
            f"{_SELECT} WHERE position > ? ORDER BY position LIMIT ?",
            (after, -1 if limit is None else limit),
        )
        found = [r for r in records(rows) if r.position > after]
        return found if limit is None else found[:limit]

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        prefix = f"{saga_id}/"
        upper = upper_bound(prefix)
        assert upper is not None  # the prefix ends with "/", which has a successor
        rows = self.rows(
            # "+position": a term the planner cannot answer from the primary key, so it takes
            # the cause index (a few rows) instead of scanning every position above ``after``.
            f"{_SELECT} WHERE cause >= ? AND cause < ? AND +position > ? ORDER BY position",
            (prefix, upper, after),
        )
        return [r for r in records(rows) if r.position > after]

    def latest(self, streams: Iterable[str]) -> dict[str, Record]:
        names = list(dict.fromkeys(streams))
        found: dict[str, Record] = {}
        for start in range(0, len(names), self.latest_chunk):
            chunk = names[start : start + self.latest_chunk]
            marks = ", ".join("?" * len(chunk))
            rows = self.rows(
                f"{_SELECT} WHERE (stream, seq) IN "
                f"(SELECT stream, last_seq FROM streams WHERE stream IN ({marks}))",
                chunk,
            )
            found.update((row[1], unpack(row)[-1]) for row in rows)
        return found

    def stream_names(self, prefix: str, *, open_only: bool) -> list[str]:
        upper = upper_bound(prefix)
        bounds = "stream >= ?" + (" AND stream < ?" if upper is not None else "")
        params = (prefix,) if upper is None else (prefix, upper)
        condition = "final = 0" if open_only else "1"
        sql = f"SELECT stream FROM streams WHERE {condition} AND {bounds} ORDER BY stream"
        return [name for (name,) in self.rows(sql, params)]

    def last_seq(self, stream: str) -> int:
        rows = self.rows("SELECT last_seq FROM streams WHERE stream = ?", (stream,))
        return int(rows[0][0]) if rows else 0

    def load_snapshot(self, stream: str) -> Snapshot | None:
        rows = self.rows("SELECT stream, seq, data FROM snapshots WHERE stream = ?", (stream,))
        return Snapshot(*rows[0]) if rows else None


def stored_below(conn: sqlite3.Connection, stream: str, below: int) -> list[Record]:
    """A stream's records with ``seq < below``, on ``conn`` (the writer's, for the summaries
    of a saga it forgot: it sees its own uncommitted writes)."""
    found = conn.execute(f"{_SELECT} WHERE stream = ? ORDER BY seq", (stream,))
    return [r for r in records(found) if r.seq < below]


def stored_many(conn: sqlite3.Connection, streams: list[str]) -> dict[str, list[Record]]:
    """Every record of each of ``streams``, on ``conn`` (the writer's), by stream."""
    found: dict[str, list[Record]] = {stream: [] for stream in streams}
    for start in range(0, len(streams), 500):
        chunk = streams[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(f"{_SELECT} WHERE stream IN ({marks}) ORDER BY stream, seq", chunk)
        for record in records(rows):
            found[record.stream].append(record)
    return found


def any_stored(conn: sqlite3.Connection, streams: list[str], step: int) -> bool:
    """Whether any of ``streams`` has records, on ``conn`` (``step`` names per query)."""
    sql = "SELECT 1 FROM streams WHERE stream IN ({}) LIMIT 1"
    for start in range(0, len(streams), step):
        chunk = streams[start : start + step]
        if conn.execute(sql.format(", ".join("?" * len(chunk))), chunk).fetchone() is not None:
            return True
    return False


def records(rows: Iterable[tuple[Any, ...]]) -> list[Record]:
    """The records of stored rows, in order. The events table is STRICT and NOT NULL (checked
    at open), so the types are right."""
    found: list[Record] = []
    for row in rows:
        type_ = row[3]
        if type_[:1] == "[":
            found.extend(unpack(row))
        else:
            position, stream, seq, type_, data, ts, cause, final = row
            found.append(Record(stream, seq, type_, data, ts, cause, final != 0, position))
    return found


def _grouped(rows: list[tuple[Any, ...]]) -> list[tuple[str, list[Record]]]:
    groups: list[tuple[str, list[Record]]] = []
    current = ""
    mine: list[Record] = []
    for row in rows:
        stream = row[1]
        if stream != current or not groups:
            current, mine = stream, []
            groups.append((stream, mine))
        if row[3][:1] == "[":
            mine.extend(unpack(row))
        else:
            position, stream, seq, type_, data, ts, cause, final = row
            mine.append(Record(stream, seq, type_, data, ts, cause, final != 0, position))
    return groups
