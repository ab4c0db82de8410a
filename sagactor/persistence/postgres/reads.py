"""The PostgreSQL journal's reads: each one query on a connection of a ``psycopg_pool`` pool.

The pool's connections are in autocommit mode, so a read sees what was committed when it ran
and holds no transaction open between reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed

from sagactor.errors import JournalError, RuntimeClosed
from sagactor.persistence.journal import Record, Snapshot

from .schema import Connection
from .urls import scrub

__all__ = ["PoolReads"]

_COLUMNS: Final = "position, stream, seq, type, data, ts, cause, final"


class PoolReads:
    """The read half of :class:`~sagactor.persistence.postgres.PostgresJournal`."""

    path: str
    schema: str
    _url: str
    _pool: ConnectionPool[Connection]
    _released: bool

    read_chunk = 4096
    """Rows per query of :meth:`read_prefix`: bounds its memory."""

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self._released:
            raise RuntimeClosed(f"journal {self.path!r} is closed")
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, params, binary=True).fetchall()
        except PoolClosed:
            raise RuntimeClosed(f"journal {self.path!r} is closed") from None
        except psycopg.Error as error:  # a lost server, a pool timeout
            problem = scrub(str(error), self._url)
            raise JournalError(f"journal {self.path!r}: cannot be read: {problem}") from error

    def _select(self, where: str) -> str:
        return f"SELECT {_COLUMNS} FROM {self.schema}.events WHERE {where}"

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        rows = self._rows(
            self._select("stream = %s AND seq > %s ORDER BY seq LIMIT %s"), (stream, after, limit)
        )
        return [_record(row) for row in rows]

    def read_prefix(self, prefix: str) -> Iterator[Record]:
        """Every record of the matching streams, by stream then seq, read lazily in chunks.

        Each chunk is its own read, so records committed while iterating may or may not show.
        """
        upper = _upper_bound(prefix)
        where = "(stream, seq) > (%s, %s)" + (" AND stream < %s" if upper is not None else "")
        sql = self._select(f"{where} ORDER BY stream, seq LIMIT %s")
        stream, seq = prefix, 0
        while True:
            bound = () if upper is None else (upper,)
            rows = self._rows(sql, (stream, seq, *bound, self.read_chunk))
            for row in rows:
                yield _record(row)
            if len(rows) < self.read_chunk:
                return
            stream, seq = rows[-1][1], rows[-1][2]

    open_chunk = 1000
    """Streams per query of :meth:`read_open`: bounds its memory."""

    def read_open(self, prefix: str) -> Iterator[tuple[str, list[Record]]]:
        """Each open stream under ``prefix`` with its records: the open streams joined to
        their events, :attr:`open_chunk` streams per query."""
        upper = _upper_bound(prefix)
        bound = () if upper is None else (upper,)
        columns = ", ".join(f"e.{name}" for name in _COLUMNS.split(", "))

        def query(compare: str) -> str:
            chosen = (
                f"SELECT stream FROM {self.schema}.streams WHERE NOT final AND stream {compare} %s"
            )
            chosen += "" if upper is None else " AND stream < %s"
            return (
                f"WITH chosen AS ({chosen} ORDER BY stream LIMIT %s) SELECT {columns} "
                f"FROM chosen JOIN {self.schema}.events AS e ON e.stream = chosen.stream "
                "ORDER BY e.stream, e.seq"
            )

        sql, start = query(">="), prefix
        while True:
            groups: list[tuple[str, list[Record]]] = []
            for row in self._rows(sql, (start, *bound, self.open_chunk)):
                if not groups or groups[-1][0] != row[1]:
                    groups.append((row[1], []))
                groups[-1][1].append(_record(row))
            yield from groups
            # Every stream listed has records, so a short chunk of groups is the last one.
            if len(groups) < self.open_chunk:
                return
            sql, start = query(">"), groups[-1][0]

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        rows = self._rows(self._select("position > %s ORDER BY position LIMIT %s"), (after, limit))
        return [_record(row) for row in rows]

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        prefix = f"{saga_id}/"
        upper = _upper_bound(prefix)
        assert upper is not None  # the prefix ends with "/", which has a successor
        rows = self._rows(
            self._select("cause >= %s AND cause < %s AND position > %s ORDER BY position"),
            (prefix, upper, after),
        )
        return [_record(row) for row in rows]

    def latest(self, streams: Iterable[str]) -> dict[str, Record]:
        names = list(dict.fromkeys(streams))
        if not names:
            return {}
        rows = self._rows(
            self._select(
                f"(stream, seq) IN (SELECT stream, last_seq FROM {self.schema}.streams "
                "WHERE stream = ANY(%s))"
            ),
            (names,),
        )
        return {row[1]: _record(row) for row in rows}

    def open_streams(self, prefix: str) -> list[str]:
        return self._stream_names(prefix, "NOT final")

    def streams(self, prefix: str) -> list[str]:
        return self._stream_names(prefix, "true")

    def _stream_names(self, prefix: str, condition: str) -> list[str]:
        upper = _upper_bound(prefix)
        bounds = "stream >= %s" + (" AND stream < %s" if upper is not None else "")
        params = (prefix,) if upper is None else (prefix, upper)
        sql = (
            f"SELECT stream FROM {self.schema}.streams WHERE {condition} AND {bounds} "
            "ORDER BY stream"
        )
        return [name for (name,) in self._rows(sql, params)]

    def last_seq(self, stream: str) -> int:
        rows = self._rows(
            f"SELECT last_seq FROM {self.schema}.streams WHERE stream = %s", (stream,)
        )
        return int(rows[0][0]) if rows else 0

    def load_snapshot(self, stream: str) -> Snapshot | None:
        rows = self._rows(
            f"SELECT stream, seq, data FROM {self.schema}.snapshots WHERE stream = %s", (stream,)
        )
        return Snapshot(rows[0][0], rows[0][1], bytes(rows[0][2])) if rows else None


def _record(row: tuple[Any, ...]) -> Record:
    position, stream, seq, type_, data, ts, cause, final = row
    return Record(stream, seq, type_, bytes(data), ts, cause, final, position)


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
