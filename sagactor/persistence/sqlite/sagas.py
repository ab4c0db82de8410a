"""The SQLite journal's ``sagas`` table: listings from its indexes, and retention.

Reads go through the reader's connection (committed data only). Retention deletes through the
writer's connection under the writer's lock, between its groups, a chunk of sagas per
transaction, so appends wait for one chunk at most.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from sagactor.errors import RuntimeClosed
from sagactor.persistence.journal import upper_bound
from sagactor.persistence.summaries import ENDED_STATUSES, SagaQuery, SagaRow

from .reader import Reader
from .schema import SAGA_COLUMNS, read_error
from .writer import Writer

__all__ = ["counts", "find", "one", "prunable", "prune", "reclaim"]

_SELECT: Final = f"SELECT {SAGA_COLUMNS} FROM sagas"
_ENDED: Final = ", ".join(f"'{status}'" for status in ENDED_STATUSES)
PRUNE_CHUNK: Final = 200  # sagas per transaction: bounds how long an append waits


def _row(values: tuple[Any, ...]) -> SagaRow:
    return SagaRow(**dict(zip(SAGA_COLUMNS.split(", "), values, strict=True)))


def find(reader: Reader, query: SagaQuery) -> list[SagaRow]:
    """Newest first: a range of ``sagas_status``, ``sagas_type`` or ``sagas_started`` read
    backwards from the cursor (the planner picks the index from the terms)."""
    terms: list[str] = []
    params: list[Any] = []
    if query.statuses:
        terms.append(f"status IN ({', '.join('?' * len(query.statuses))})")
        params.extend(query.statuses)
    if query.saga is not None:
        terms.append("type = ?")
        params.append(query.saga)
    if query.since is not None:
        terms.append("started >= ?")
        params.append(query.since)
    if query.until is not None:
        terms.append("started < ?")
        params.append(query.until)
    if query.after is not None:
        terms.append("(started, id) < (?, ?)")
        params.extend(query.after)
    if query.ids is not None:
        terms.append(f"id IN ({', '.join('?' * len(query.ids))})")
        params.extend(query.ids)
    where = f" WHERE {' AND '.join(terms)}" if terms else ""
    sql = f"{_SELECT}{where} ORDER BY started DESC, id DESC LIMIT ?"
    return [_row(values) for values in reader.rows(sql, (*params, query.limit))]


def one(reader: Reader, saga_id: str) -> SagaRow | None:
    rows = reader.rows(f"{_SELECT} WHERE id = ?", (saga_id,))
    return _row(rows[0]) if rows else None


def counts(reader: Reader) -> dict[str, int]:
    """One pass over ``sagas_status`` (an index, not the events): each status's count."""
    rows = reader.rows("SELECT status, count(*) FROM sagas GROUP BY status", ())
    return {status: int(n) for status, n in rows}


def prunable(reader: Reader, before: float, keep: int, limit: int) -> list[str]:
    """From ``sagas_ended``: the ended sagas past the ``keep`` newest, ended before ``before``."""
    rows = reader.rows(
        "SELECT id FROM (SELECT id, ended FROM sagas WHERE ended IS NOT NULL AND events > 0 "
        "AND status IN "
        f"({_ENDED}) ORDER BY ended DESC, id DESC LIMIT -1 OFFSET ?) WHERE ended < ? LIMIT ?",
        (keep, before, limit),
    )
    return [saga_id for (saga_id,) in rows]


def prune(writer: Writer, saga_ids: Sequence[str], *, keep_summary: bool) -> int:
    """Delete the sagas' streams and the participant records they caused that a snapshot
    covers, :data:`PRUNE_CHUNK` sagas per transaction. Returns the records deleted."""
    deleted = 0
    for start in range(0, len(saga_ids), PRUNE_CHUNK):
        chunk = saga_ids[start : start + PRUNE_CHUNK]
        with writer.guard:
            if writer.state != "open":
                raise RuntimeClosed(f"journal {writer.path!r} is closed")
            conn = writer.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                for saga_id in chunk:
                    deleted += _prune_one(conn, saga_id, keep_summary)
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise read_error(writer.path, "cannot prune", error) from error
        writer.summaries.forget(chunk)
    return deleted


def _prune_one(conn: sqlite3.Connection, saga_id: str, keep_summary: bool) -> int:
    stream = f"saga/{saga_id}"
    deleted = conn.execute("DELETE FROM events WHERE stream = ?", (stream,)).rowcount
    conn.execute("DELETE FROM streams WHERE stream = ?", (stream,))
    conn.execute("DELETE FROM snapshots WHERE stream = ?", (stream,))
    if keep_summary:  # the row stays; no event of it does
        conn.execute("UPDATE sagas SET events = 0 WHERE id = ?", (saga_id,))
    else:
        conn.execute("DELETE FROM sagas WHERE id = ?", (saga_id,))
    # What it made participants do: needed by their fold only above their snapshot.
    prefix = f"{saga_id}/"
    deleted += conn.execute(
        "DELETE FROM events WHERE cause >= ? AND cause < ? AND stream >= 'participant/' "
        "AND stream < 'participant0' AND seq <= coalesce((SELECT s.seq FROM snapshots AS s "
        "WHERE s.stream = events.stream), 0)",
        (prefix, upper_bound(prefix)),
    ).rowcount
    return deleted


def reclaim(writer: Writer) -> int:
    """Free pages back to the system: an incremental vacuum, then a checkpoint that moves the
    shrunk database out of the WAL and truncates it. A file made before auto-vacuum was on
    frees nothing here (a one-off ``VACUUM`` turns it on: see docs/operations.md)."""
    with writer.guard:
        if writer.state != "open":
            raise RuntimeClosed(f"journal {writer.path!r} is closed")
        conn = writer.conn
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        try:
            conn.execute("PRAGMA incremental_vacuum").fetchall()
            if writer.path != ":memory:":
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as error:
            raise read_error(writer.path, "cannot reclaim space", error) from error
        left = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return (free - left) * page
