"""The PostgreSQL journal's ``sagas`` table (schema version 2): its migration and backfill,
the rows written with each group (:func:`upsert`), listings from its indexes, and retention
(on a pool connection: the pruned sagas ended, so the writer never touches their rows)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

from psycopg_pool import ConnectionPool

from sagactor.persistence.journal import Record
from sagactor.persistence.summaries import (
    ENDED_STATUSES,
    WRITTEN,
    SagaQuery,
    SagaRow,
    SummaryKeeper,
    fold_rows,
)

from .schema import Connection

__all__ = ["SagaTable", "backfill", "upsert"]

_FIELDS: Final = [
    "id",
    "type",
    "version",
    "mode",
    "status",
    "step",
    "started",
    "ended",
    "reason",
    "input",
    "result",
    "updated",
    "events",
]
_TYPES: Final = [
    "text[]",
    "text[]",
    "bigint[]",
    "text[]",
    "text[]",
    "text[]",
    "float8[]",
    "float8[]",
    "text[]",
    "text[]",
    "text[]",
    "float8[]",
    "bigint[]",
]
_ENDED: Final = ", ".join(f"'{status}'" for status in ENDED_STATUSES)


def upsert(conn: Connection, schema: str, rows: Sequence[SagaRow]) -> None:
    """Write ``rows`` (one per saga) in the current transaction: one statement."""
    if not rows:
        return
    columns = ", ".join(_FIELDS)
    arrays = ", ".join(f"%s::{t}" for t in _TYPES)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _FIELDS[1:] if c != "input")
    # A WRITTEN input (see summaries.merge_rows) leaves the stored one.
    updates += f", input = coalesce(nullif(excluded.input, '{WRITTEN}'), {schema}.sagas.input)"
    conn.execute(
        f"INSERT INTO {schema}.sagas ({columns}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        [[getattr(row, c) for row in rows] for c in _FIELDS],
    )


def backfill(conn: Connection, schema: str) -> None:
    """Version 1 -> 2: the rows folded from the saga streams (in the migration's transaction)."""
    found = conn.execute(
        f"SELECT stream, seq, type, data, ts FROM {schema}.events "
        "WHERE stream >= 'saga/' AND stream < 'saga0' ORDER BY stream, seq"
    )
    records = (Record(stream, seq, t, bytes(data), ts) for stream, seq, t, data, ts in found)
    rows = list(fold_rows(records))
    for start in range(0, len(rows), 1000):
        upsert(conn, schema, rows[start : start + 1000])


class SagaTable:
    """The ``sagas`` table's side of :class:`~.journal.PostgresJournal`."""

    schema: str
    _pool: ConnectionPool[Connection]
    _wconn: Connection

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # the journal's reads provide it

    @functools.cached_property
    def summaries(self) -> SummaryKeeper:
        """The writer's fold of each saga's row (it reads a forgotten saga on its connection)."""
        return SummaryKeeper(self._stored_below)

    def _stored_below(self, stream: str, below: int) -> list[Record]:
        found = self._wconn.execute(
            f"SELECT stream, seq, type, data, ts FROM {self.schema}.events "
            "WHERE stream = %s AND seq < %s ORDER BY seq",
            (stream, below),
        ).fetchall()
        return [Record(s, seq, t, bytes(data), ts) for s, seq, t, data, ts in found]

    def sagas(self, query: SagaQuery) -> list[SagaRow]:
        terms: list[str] = []
        params: list[Any] = []
        filters: Mapping[str, Any] = {
            "status = ANY(%s)": list(query.statuses) if query.statuses else None,
            "type = %s": query.saga,
            "started >= %s": query.since,
            "started < %s": query.until,
            "id = ANY(%s)": None if query.ids is None else list(query.ids),
        }
        for term, value in filters.items():
            if value is not None:
                terms.append(term)
                params.append(value)
        if query.after is not None:
            terms.append("(started, id) < (%s, %s)")
            params.extend(query.after)
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        rows = self._rows(
            f"SELECT {', '.join(_FIELDS)} FROM {self.schema}.sagas{where} "
            "ORDER BY started DESC, id DESC LIMIT %s",
            (*params, query.limit),
        )
        return [SagaRow(**dict(zip(_FIELDS, row, strict=True))) for row in rows]

    def saga_row(self, saga_id: str) -> SagaRow | None:
        rows = self.sagas(SagaQuery(ids=(saga_id,), limit=1))
        return rows[0] if rows else None

    def saga_counts(self) -> dict[str, int]:
        rows = self._rows(f"SELECT status, count(*) FROM {self.schema}.sagas GROUP BY status", ())
        return {status: int(n) for status, n in rows}

    def prunable(self, before: float, keep: int, limit: int) -> list[str]:
        rows = self._rows(
            f"SELECT id FROM (SELECT id, ended FROM {self.schema}.sagas WHERE ended IS NOT NULL "
            f"AND events > 0 AND status IN ({_ENDED}) ORDER BY ended DESC, id DESC OFFSET %s) "
            "AS e WHERE ended < %s LIMIT %s",
            (keep, before, limit),
        )
        return [saga_id for (saga_id,) in rows]

    def prune(self, saga_ids: Sequence[str], *, keep_summary: bool = True) -> int:
        s = self.schema
        streams = [f"saga/{saga_id}" for saga_id in saga_ids]
        causes = [f"{saga_id}/%" for saga_id in saga_ids]
        with self._pool.connection() as conn, conn.transaction():
            deleted = conn.execute(
                f"DELETE FROM {s}.events WHERE stream = ANY(%s)", (streams,)
            ).rowcount
            conn.execute(f"DELETE FROM {s}.streams WHERE stream = ANY(%s)", (streams,))
            conn.execute(f"DELETE FROM {s}.snapshots WHERE stream = ANY(%s)", (streams,))
            if keep_summary:
                conn.execute(f"UPDATE {s}.sagas SET events = 0 WHERE id = ANY(%s)", (saga_ids,))
            else:
                conn.execute(f"DELETE FROM {s}.sagas WHERE id = ANY(%s)", (list(saga_ids),))
            # What they made participants do, below each participant's snapshot.
            deleted += conn.execute(
                f"DELETE FROM {s}.events AS e USING {s}.snapshots AS n WHERE n.stream = e.stream "
                "AND e.stream LIKE 'participant/%%' AND e.seq <= n.seq AND e.cause LIKE ANY(%s)",
                (causes,),
            ).rowcount
        self.summaries.forget(saga_ids)
        return deleted
