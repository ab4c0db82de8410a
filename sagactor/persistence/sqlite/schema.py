"""The journal file's format: its tables, its version, and the checks that refuse a file that
is not ours (foreign, damaged, or written by a newer sagactor) before anything is written.

Version 1 was the first format; version 2 adds the ``events_cause`` index (a saga's history);
version 3 adds the ``sagas`` summary table (one row per saga, kept in the transaction of the
saga's events; see :mod:`sagactor.persistence.summaries`) and the ``saga_events`` view, both a
documented interface for SQL tools; version 4 stores saga events as JSON (:mod:`sagactor.codec`),
one row per append and stream (several records in one row, see
:mod:`sagactor.persistence.packing`), and the ``saga_events`` view unnests those rows and gives
each event's JSON ``payload`` for ``json_extract``. An older file is upgraded in place when
opened, the table backfilled from the events (its one-record rows read as they are, its older
events stay msgpack: their ``payload`` is NULL); a version 3 sagactor refuses a version 4 file.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from sagactor.errors import JournalCorrupt, JournalError
from sagactor.persistence.packing import unpack
from sagactor.persistence.summaries import fold_rows

__all__ = [
    "APPLICATION_ID",
    "COLUMNS",
    "SAGA_COLUMNS",
    "SCHEMA_VERSION",
    "UPSERT_SAGAS",
    "connect",
    "create_schema",
    "inspect",
    "read_error",
    "upgrade",
]

SCHEMA_VERSION: Final = 4
"""1: the first format. 2: adds the ``events_cause`` index (a saga's history). 3: adds the
``sagas`` table and the ``saga_events`` view. 4: saga events are written as JSON, a row may
hold several records of one append, and the view unnests them with each one's ``payload``. An
older file is upgraded in place when opened."""
APPLICATION_ID: Final = 0x53414741  # "SAGA", in the file header, for `file(1)` and friends
_APP_NAME: Final = "sagactor"
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
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
COLUMNS: Final = ", ".join(_EVENTS)
"""The events table's columns, in the order :func:`~.reader.record` reads them."""
_SQL_TYPES: Final = {int: "INTEGER", str: "TEXT", bytes: "BLOB", float: "REAL"}
# What one saga caused in every stream (``Journal.read_caused``): version 2 of the schema.
_CAUSE_INDEX: Final = "CREATE INDEX IF NOT EXISTS events_cause ON events (cause)"
# A saga's own events, readable without msgpack: what happened to it, in order, and since
# version 4 each one's JSON text (``payload``; NULL for an event an older version wrote as
# msgpack). A row holding several records has the JSON array of their types (json_each unnests
# it; the cause shown is the row's, its first record's: all are the same saga's) and, when they
# are JSON, the JSON array of their [event, ts, cause]. As text: SQLite's JSON functions would
# read a BLOB as their binary JSONB.
_SAGA_EVENTS: Final = (
    "CREATE VIEW IF NOT EXISTS saga_events AS SELECT substr(e.stream, 6) AS saga_id, "
    "e.seq - (json_array_length(j.json) - 1 - j.key) AS seq, j.value AS type, "
    "strftime('%Y-%m-%d %H:%M:%f', e.ts, 'unixepoch') AS at, e.ts AS ts, e.cause AS cause, "
    "e.final AND j.key = json_array_length(j.json) - 1 AS final, "
    "e.position - (json_array_length(j.json) - 1 - j.key) AS position, "
    "CASE WHEN substr(e.type, 1, 1) = '[' THEN CASE WHEN substr(e.data, 1, 1) = x'5b' "
    "AND json_valid(CAST(e.data AS TEXT)) "
    "THEN json_extract(CAST(e.data AS TEXT), '$[' || j.key || '][0]') END "
    "WHEN substr(e.data, 1, 1) = x'7b' AND json_valid(CAST(e.data AS TEXT)) "
    "THEN CAST(e.data AS TEXT) END AS payload FROM events AS e, "
    "json_each(CASE WHEN substr(e.type, 1, 1) = '[' THEN e.type ELSE json_array(e.type) END) AS j "
    "WHERE e.stream >= 'saga/' AND e.stream < 'saga0'"
)
# Version 3: one row per saga (columns of summaries.SagaRow, in order), kept by the writer in
# the transaction of the saga's events; input and result are JSON text for json_extract.
SAGA_COLUMNS: Final = (
    "id, type, version, mode, status, step, started, ended, reason, input, result, updated, events"
)
_SAGAS: Final = (
    "CREATE TABLE IF NOT EXISTS sagas ("
    "id TEXT PRIMARY KEY, type TEXT NOT NULL, version INTEGER NOT NULL, mode TEXT NOT NULL, "
    "status TEXT NOT NULL, step TEXT NOT NULL, started REAL NOT NULL, ended REAL, "
    "reason TEXT NOT NULL, input TEXT NOT NULL, result TEXT, updated REAL NOT NULL, "
    "events INTEGER NOT NULL) STRICT",
    # Listings are newest first, by status or type or neither; retention finds ended sagas.
    "CREATE INDEX IF NOT EXISTS sagas_started ON sagas (started, id)",
    "CREATE INDEX IF NOT EXISTS sagas_status ON sagas (status, started, id)",
    "CREATE INDEX IF NOT EXISTS sagas_type ON sagas (type, started, id)",
    "CREATE INDEX IF NOT EXISTS sagas_ended ON sagas (ended) "
    "WHERE ended IS NOT NULL AND events > 0",
    _SAGA_EVENTS,
    "CREATE VIEW IF NOT EXISTS saga_summaries AS SELECT id, type, version, mode, status, step, "
    "strftime('%Y-%m-%d %H:%M:%f', started, 'unixepoch') AS started_at, "
    "strftime('%Y-%m-%d %H:%M:%f', ended, 'unixepoch') AS ended_at, reason, json(input) AS input, "
    "json(result) AS result, events FROM sagas",
)
# Set once by a saga's start, never changed by its later events: an update leaves them (and
# the indexes on them) alone, so SQLite rewrites only the status and ended indexes' entries.
_FIXED_AT_START: Final = frozenset({"id", "type", "version", "mode", "started", "input"})
UPSERT_SAGAS: Final = (
    f"INSERT INTO sagas ({SAGA_COLUMNS}) VALUES {{}} ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in SAGA_COLUMNS.split(", ") if c not in _FIXED_AT_START)
)


def connect(path: str, target: str, busy_ms: int, *, uri: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue ``BEGIN IMMEDIATE`` ourselves)."""
    try:
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=uri)
    except sqlite3.Error as error:
        raise read_error(path, "cannot open", error) from error
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    return conn


def inspect(path: str, busy_ms: int) -> bool:
    """Whether the file holds our schema; raises if it holds anything else.

    Uses a read-only connection, so a refused file is left exactly as it was (a writable one
    could, for instance, checkpoint a foreign WAL into it on close).
    """
    try:
        with open(path, "rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return False
    except IsADirectoryError as error:
        raise JournalError(f"journal {path!r}: is a directory") from error
    if not head:
        return False
    if head != _SQLITE_MAGIC:
        raise JournalCorrupt(path, "not an SQLite database (the file has no SQLite header)")
    conn = connect(path, Path(path).resolve().as_uri() + "?mode=ro", busy_ms, uri=True)
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        objects = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        if not objects and not app_id:
            return False  # an empty SQLite file: ours to fill
        _verify(path, conn, app_id, {name for kind, name in objects if kind == "table"})
        return True
    except sqlite3.DatabaseError as error:
        damaged = (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT_CODES
        detail = f": the file is damaged ({error})" if damaged else f" ({error})"
        raise JournalCorrupt(path, f"not a readable SQLite database{detail}") from error
    finally:
        conn.close()


def _verify(path: str, conn: sqlite3.Connection, app_id: int, tables: set[str]) -> None:
    meta: dict[str, Any] = {}
    if "meta" in tables:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    if meta.get("application_id") != _APP_NAME or app_id != APPLICATION_ID:
        listing = ", ".join(sorted(tables)) or "none"
        raise JournalCorrupt(
            path, f"not a sagactor journal (application_id {app_id:#x}, tables: {listing})"
        )
    version = meta.get("schema_version")
    if type(version) is not int:
        raise JournalCorrupt(path, f"schema_version is {version!r}, not an integer")
    if version > SCHEMA_VERSION:
        raise JournalCorrupt(
            path,
            f"written by a newer sagactor (schema version {version}, this sagactor reads "
            f"up to {SCHEMA_VERSION}); upgrade sagactor to open it",
        )
    missing = {"events", "streams", "snapshots"} - tables
    if missing:
        raise JournalCorrupt(path, f"missing table(s) {', '.join(sorted(missing))}")
    strict = {row[1]: row[5] for row in conn.execute("PRAGMA table_list")}
    columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(events)")}
    expected = {name: _SQL_TYPES[kind] for name, kind in _EVENTS.items()}
    if columns != expected or not strict.get("events"):
        # Only a STRICT table guarantees the column types the readers rely on.
        raise JournalCorrupt(path, f"events table is malformed (columns {columns})")


def create_schema(conn: sqlite3.Connection) -> None:
    """Make the tables of :data:`SCHEMA_VERSION` in an empty file, in one transaction."""
    db = sqlite_utils.Database(conn, execute_plugins=False)
    # Before the first table (the journal sets it before WAL mode, too): retention's deletes
    # can then give pages back to the system (``incremental_vacuum``) without a full VACUUM.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
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
        for statement in _SAGAS:
            conn.execute(statement)
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


def upgrade(path: str, conn: sqlite3.Connection) -> None:
    """Bring a file written by an older sagactor to :data:`SCHEMA_VERSION` (under the lock, in
    one transaction: a crash leaves the old version, which upgrades at the next open)."""
    (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CAUSE_INDEX)  # version 1 -> 2
        if version < 3:
            _backfill_sagas(conn)
        else:  # version 3 -> 4: the view unnests packed rows and gains the payload
            conn.execute("DROP VIEW IF EXISTS saga_events")
            conn.execute(_SAGA_EVENTS)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    log.info("journal %r: schema version %s upgraded to %s", path, version, SCHEMA_VERSION)


def _backfill_sagas(conn: sqlite3.Connection) -> None:
    """Version 2 -> 3: the ``sagas`` table, folded from the saga streams' events."""
    for statement in _SAGAS:
        conn.execute(statement)
    cursor = conn.execute(
        f"SELECT {COLUMNS} FROM events WHERE stream >= 'saga/' AND stream < 'saga0' "
        "ORDER BY stream, seq"
    )
    records = (record for row in cursor for record in unpack(row))
    one = "(" + ", ".join("?" * len(SAGA_COLUMNS.split(", "))) + ")"
    insert = conn.cursor()  # the read cursor stays open while rows go in
    for row in fold_rows(records):
        insert.execute(UPSERT_SAGAS.format(one), tuple(getattr(row, c) for c in _FIELDS))


_FIELDS: Final = SAGA_COLUMNS.split(", ")


def read_error(path: str, what: str, error: sqlite3.Error) -> JournalError:
    """A damaged file is :class:`JournalCorrupt`; any other failure a :class:`JournalError`."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code in _CORRUPT_CODES:
        return JournalCorrupt(path, f"{what}: the file is damaged ({error})")
    return JournalError(f"journal {path!r}: {what}: {error}")
