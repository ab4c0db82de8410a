"""One group of appends, written in one transaction: checks in memory, then three statements.

The writer holds the journal's lease (checked first in every group: see :mod:`.lease`), so
the streams table is the truth about each stream's last
sequence number: one query reads it for every stream of the group, each batch is checked
against it in memory (a conflicting batch is refused alone and never reaches the database), and
the accepted batches go in as one multi-row INSERT (arrays through ``unnest``: one statement
text whatever the group's size, so PostgreSQL plans it once). Pipeline mode sends the writes
and the COMMIT together: a group costs two round trips to the server. A value the database refuses
(a NUL character in a text, an unexpected duplicate) fails that one statement; the group is
then written again batch by batch, each in a savepoint, to refuse only the batch at fault.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg import errors

from sagactor.errors import JournalFenced, JournalWriteError, StreamConflict
from sagactor.persistence.journal import DoneCallback, Record, Snapshot

from ..summaries import SagaRow, SummaryKeeper, merge_rows, saga_ids_of
from .lease import LEASE_NAME, check_token
from .sagas import upsert
from .schema import Connection

__all__ = [
    "MAX_GROUP",
    "UNAWAITED_WAIT",
    "Batch",
    "Unsent",
    "batch_error",
    "hold_for_company",
    "write_group",
    "write_one_by_one",
]

MAX_GROUP: Final = 1000  # batches per transaction: bounds the blast radius of one failure

# Stream ends: each stream's (last seq, final) once the batch is written.
Ends = dict[str, tuple[int, bool]]


@dataclass(slots=True)
class Batch:
    records: Sequence[Record]
    on_done: DoneCallback
    snapshot: Snapshot | None
    unawaited: bool = False  # nobody waits for its commit (see Journal.append_unawaited)


UNAWAITED_WAIT = 0.002  # seconds a group nobody waits for waits for company, at most


def hold_for_company(
    queue: collections.deque[Batch], cond: threading.Condition, is_open: Callable[[], bool]
) -> None:
    """With ``cond`` held: while every queued batch is one nobody waits for (a decision acted
    on before its commit), wait up to :data:`UNAWAITED_WAIT` for an awaited one to join, so
    both share a commit (the awaited one is usually the participant's record the decision's
    command caused). A close or a kill stops the wait; at most MAX_GROUP batches are held."""
    deadline = time.monotonic() + UNAWAITED_WAIT
    while queue and is_open() and len(queue) < MAX_GROUP and all(b.unawaited for b in queue):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        cond.wait(left)


class Unsent(Exception):  # noqa: N818 - named after the condition
    """The connection was found lost before any write of the group was sent: nothing of the
    group is in doubt, so it may be written again on a new connection."""


def write_group(
    conn: Connection,
    schema: str,
    batches: Sequence[Batch],
    killed: Callable[[], bool],
    summaries: SummaryKeeper,
    token: int,
) -> tuple[list[BaseException | None], bool]:
    """Write, in one transaction, every batch that continues its streams; the refused ones
    get their conflict. Returns the results and whether the transaction was committed (not
    when ``killed()`` says so by then).

    Two round trips in pipeline mode: BEGIN, the lease's token and the stream ends, then the
    writes and COMMIT.

    Raises:
        Unsent: The connection was lost during the first round trip.
        JournalFenced: The lease's token is no longer ``token``: nothing was written.
        Exception: What the database raised; :func:`batch_error` tells whether one batch's
            values may be the cause (then try :func:`write_one_by_one`).
    """
    streams = {r.stream for b in batches for r in b.records}
    with conn.pipeline():
        try:
            conn.execute("BEGIN")
            lease = conn.execute(check_token(schema), (LEASE_NAME,))
            last = _last_seqs(conn, schema, streams)
            held = lease.fetchone()
        except psycopg.OperationalError as error:
            if conn.broken:
                raise Unsent(str(error)) from error
            raise
        _check_fence(held, token)
        results: list[BaseException | None] = []
        rows: list[Record] = []
        ends: Ends = {}
        snapshots: dict[str, Snapshot] = {}
        sagas: dict[str, SagaRow] = {}
        now = time.time()
        for batch in batches:
            checked = _check(batch.records, last)
            results.append(checked if isinstance(checked, StreamConflict) else None)
            if isinstance(checked, StreamConflict):
                continue
            last.update((stream, end[0]) for stream, end in checked.items())
            ends.update(checked)
            rows.extend(batch.records)
            merge_rows(sagas, summaries.rows(batch.records, now))
            if batch.snapshot is not None:
                snapshots[batch.snapshot.stream] = batch.snapshot
        _insert(conn, schema, rows, ends, snapshots.values())
        upsert(conn, schema, list(sagas.values()))
        commit = not killed()  # killed mid-group: like a crash before COMMIT
        conn.execute("COMMIT" if commit else "ROLLBACK")
    return results, commit


def write_one_by_one(
    conn: Connection,
    schema: str,
    batches: Sequence[Batch],
    killed: Callable[[], bool],
    summaries: SummaryKeeper,
    token: int,
) -> tuple[list[BaseException | None], bool]:
    """The slow path: each batch in its own savepoint, so a refused value refuses it alone."""
    conn.execute("BEGIN")
    _check_fence(conn.execute(check_token(schema), (LEASE_NAME,)).fetchone(), token)
    last: dict[str, int] = {}  # seqs this transaction wrote already
    results: list[BaseException | None] = []
    for batch in batches:
        conn.execute("SAVEPOINT batch")
        try:
            known = _last_seqs(conn, schema, {r.stream for r in batch.records} - last.keys())
            checked = _check(batch.records, known | last)
            if isinstance(checked, StreamConflict):
                raise checked
            snapshots = [] if batch.snapshot is None else [batch.snapshot]
            _insert(conn, schema, batch.records, checked, snapshots)
            upsert(conn, schema, list(summaries.rows(batch.records, time.time()).values()))
        except Exception as error:
            if not batch_error(error):
                raise
            conn.execute("ROLLBACK TO SAVEPOINT batch")
            conn.execute("RELEASE SAVEPOINT batch")
            summaries.forget(saga_ids_of(batch.records))
            results.append(_refusal(batch, error))
            continue
        conn.execute("RELEASE SAVEPOINT batch")
        last.update((stream, end[0]) for stream, end in checked.items())
        results.append(None)
    commit = not killed()
    conn.execute("COMMIT" if commit else "ROLLBACK")
    return results, commit


def _check_fence(held: tuple[object, ...] | None, token: int) -> None:
    if held is None or held[0] != token:
        raise JournalFenced(token, None if held is None else int(str(held[0])))


def batch_error(error: BaseException) -> bool:
    """True for errors one batch's values can cause; false for the database's own (lost
    connection, disk full, shutdown), which fail the whole group."""
    return isinstance(
        error,
        StreamConflict | psycopg.IntegrityError | psycopg.DataError | ValueError | TypeError,
    )


def _refusal(batch: Batch, error: Exception) -> BaseException:
    if isinstance(error, StreamConflict):
        return error
    if isinstance(error, errors.UniqueViolation) and batch.records:
        return StreamConflict(batch.records[0].stream, batch.records[0].seq)
    refused = JournalWriteError(f"batch refused: {error!r}")
    refused.__cause__ = error
    return refused


def _last_seqs(conn: Connection, schema: str, streams: Iterable[str]) -> dict[str, int]:
    names = list(streams)
    if not names:
        return {}
    rows = conn.execute(
        f"SELECT stream, last_seq FROM {schema}.streams WHERE stream = ANY(%s)", (names,)
    ).fetchall()
    return {stream: int(seq) for stream, seq in rows}


def _check(records: Sequence[Record], last: dict[str, int]) -> Ends | StreamConflict:
    """The batch's stream ends, or the conflict that refuses it (``last``: the stored seqs)."""
    ends: Ends = {}
    for record in records:
        stream = record.stream
        previous = ends[stream][0] if stream in ends else last.get(stream, 0)
        if record.seq != previous + 1:
            return StreamConflict(stream, record.seq)
        ends[stream] = (record.seq, record.final)
    return ends


def _insert(
    conn: Connection,
    schema: str,
    rows: Sequence[Record],
    ends: Ends,
    snapshots: Iterable[Snapshot],
) -> None:
    now = time.time()
    if rows:
        conn.execute(
            f"INSERT INTO {schema}.events (stream, seq, type, data, ts, cause, final) "
            "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::bytea[], "
            "%s::float8[], %s::text[], %s::boolean[])",
            (
                [r.stream for r in rows],
                [r.seq for r in rows],
                [r.type for r in rows],
                [r.data for r in rows],
                [r.ts or now for r in rows],
                [r.cause for r in rows],
                [r.final for r in rows],
            ),
        )
    if ends:
        conn.execute(
            f"INSERT INTO {schema}.streams (stream, last_seq, final) "
            "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::boolean[]) "
            "ON CONFLICT (stream) DO UPDATE "
            "SET last_seq = excluded.last_seq, final = excluded.final",
            (list(ends), [end[0] for end in ends.values()], [end[1] for end in ends.values()]),
        )
    snaps = list(snapshots)
    if snaps:
        conn.execute(
            f"INSERT INTO {schema}.snapshots (stream, seq, data) "
            "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bytea[]) "
            "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, data = excluded.data",
            ([s.stream for s in snaps], [s.seq for s in snaps], [s.data for s in snaps]),
        )
