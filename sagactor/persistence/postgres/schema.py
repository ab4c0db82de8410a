"""The PostgreSQL journal's tables, their versions, and the checks made when one is opened.

All of a journal lives in one PostgreSQL schema (``sagactor`` by default), so it can share a
database with the application's own tables. The ``meta`` table names the owner and the
version; each version is a migration, applied in order, in one transaction, under the
journal's opening lock (PostgreSQL's DDL is transactional: a crash mid-upgrade leaves the old
version).
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable
from typing import Final

import psycopg
from psycopg.rows import TupleRow

from sagactor.errors import DefinitionError, JournalCorrupt, JournalError

__all__ = ["SCHEMA_VERSION", "Connection", "lock_key", "prepare", "valid_schema"]

log = logging.getLogger(__name__)

Connection = psycopg.Connection[TupleRow]

SCHEMA_VERSION: Final = 4
"""1: events, streams (with the open-stream index), snapshots, the cause index, meta.
2: the ``sagas`` table (one summary row per saga; see :mod:`.sagas`), backfilled from events.
3: the ``leases`` table (the active runtime's lease: owner, fencing token, expiry; see
:mod:`.lease`) and the ``starts`` table (sagas a standby asked the active runtime to start).
4: saga events are written as JSON (:mod:`sagactor.codec`); the ``saga_events`` view shows
each saga's events with their ``payload`` as ``jsonb`` (NULL for one written as msgpack)."""
_APP_NAME: Final = "sagactor"
_LOCK_CLASS: Final = 0x53414741  # "SAGA": the first key of the journal's advisory lock
_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Columns compare with COLLATE "C": prefix ranges and ORDER BY then follow code points, as
# Python's sorted() does, whatever the database's locale.
_SAGAS_MIGRATION: Final = (  # version 2: one summary row per saga (see .sagas)
    """CREATE TABLE {s}.sagas (
        id text COLLATE "C" PRIMARY KEY,
        type text NOT NULL,
        version bigint NOT NULL,
        mode text NOT NULL,
        status text NOT NULL,
        step text NOT NULL,
        started double precision NOT NULL,
        ended double precision,
        reason text NOT NULL,
        input text NOT NULL,
        result text,
        updated double precision NOT NULL,
        events bigint NOT NULL
    )""",
    "CREATE INDEX sagas_started ON {s}.sagas (started, id)",
    "CREATE INDEX sagas_status ON {s}.sagas (status, started, id)",
    "CREATE INDEX sagas_type ON {s}.sagas (type, started, id)",
    "CREATE INDEX sagas_ended ON {s}.sagas (ended) WHERE ended IS NOT NULL AND events > 0",
)
_LEASES_MIGRATION: Final = (  # version 3: several runtimes, one active (see .lease, .starts)
    """CREATE TABLE {s}.leases (
        name text COLLATE "C" PRIMARY KEY,
        owner text NOT NULL,
        token bigint NOT NULL,
        expires timestamptz NOT NULL,
        acquired timestamptz NOT NULL
    )""",
    """CREATE TABLE {s}.starts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        saga_id text COLLATE "C" NOT NULL,
        saga text NOT NULL,
        version bigint NOT NULL,
        mode text NOT NULL,
        input bytea NOT NULL,
        requested timestamptz NOT NULL DEFAULT clock_timestamp(),
        error text
    )""",
    "CREATE INDEX starts_saga_id ON {s}.starts (saga_id)",
)
_SAGA_EVENTS_MIGRATION: Final = (  # version 4: a saga's events for SQL tools, payload as jsonb
    """CREATE OR REPLACE VIEW {s}.saga_events AS SELECT substr(stream, 6) AS saga_id, seq, type,
        to_timestamp(ts) AS at, ts, cause, final, position,
        CASE WHEN substr(data, 1, 1) = '\\x7b'::bytea
            THEN convert_from(data, 'UTF8')::jsonb END AS payload
        FROM {s}.events WHERE stream >= 'saga/' AND stream < 'saga0'""",
)
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        "CREATE SCHEMA IF NOT EXISTS {s}",
        'CREATE TABLE {s}.meta (key text COLLATE "C" PRIMARY KEY, value text NOT NULL)',
        """CREATE TABLE {s}.events (
            position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stream text COLLATE "C" NOT NULL,
            seq bigint NOT NULL,
            type text NOT NULL,
            data bytea NOT NULL,
            ts double precision NOT NULL,
            cause text COLLATE "C" NOT NULL,
            final boolean NOT NULL,
            CONSTRAINT events_stream_seq UNIQUE (stream, seq)
        )""",
        # What one saga caused in every stream (Journal.read_caused).
        "CREATE INDEX events_cause ON {s}.events (cause)",
        """CREATE TABLE {s}.streams (
            stream text COLLATE "C" PRIMARY KEY,
            last_seq bigint NOT NULL,
            final boolean NOT NULL
        )""",
        # Recovery asks for the few open streams among many finished ones: index only those.
        "CREATE INDEX streams_open ON {s}.streams (stream) WHERE NOT final",
        """CREATE TABLE {s}.snapshots (
            stream text COLLATE "C" PRIMARY KEY,
            seq bigint NOT NULL,
            data bytea NOT NULL
        )""",
        f"INSERT INTO {{s}}.meta (key, value) VALUES ('application_id', '{_APP_NAME}')",
    ),
    2: _SAGAS_MIGRATION,
    3: _LEASES_MIGRATION,
    4: _SAGA_EVENTS_MIGRATION,
}
_EVENTS: Final = {
    "position": "bigint",
    "stream": "text",
    "seq": "bigint",
    "type": "text",
    "data": "bytea",
    "ts": "double precision",
    "cause": "text",
    "final": "boolean",
}


def valid_schema(schema: str) -> str:
    """``schema`` if it is a plain lower-case SQL name (it is spliced into statements)."""
    if not _NAME.fullmatch(schema):
        raise DefinitionError(
            "PostgresJournal",
            f"schema must be a lower-case SQL name (letters, digits, _), not {schema!r}",
            kind="setting",
        )
    return schema


def lock_key(schema: str) -> tuple[int, int]:
    """The two keys of the advisory lock held while a journal is opened (its schema checked and
    migrated, its lease taken): opens never race. sagactor before schema version 3 held it for
    the whole life of its runtime, so such a runtime still keeps a newer one from migrating."""
    crc = zlib.crc32(schema.encode())
    return _LOCK_CLASS, crc - (1 << 32) if crc >= 1 << 31 else crc


def prepare(
    conn: Connection,
    schema: str,
    path: str,
    *,
    create: bool,
    backfill: Callable[[Connection, str], None] | None = None,
) -> None:
    """Check the journal in ``schema`` and bring it to :data:`SCHEMA_VERSION`.

    Called with the journal's opening lock held, on a connection in autocommit mode.

    Raises:
        JournalError: There is no journal and ``create`` is false.
        JournalCorrupt: The schema holds tables that are not a sagactor journal, or a journal
            of a newer version.
    """
    tables = {
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        )
    }
    version = _version(conn, schema, path, tables) if tables else 0
    if version > SCHEMA_VERSION:
        raise JournalCorrupt(
            path,
            f"written by a newer sagactor (schema version {version}, this sagactor reads up to "
            f"{SCHEMA_VERSION}); upgrade sagactor to open it",
        )
    if version == 0 and not create:
        raise JournalError(
            f"journal {path!r}: the database has no sagactor journal (schema {schema!r}); "
            "open it with create=True to make one"
        )
    if version < SCHEMA_VERSION:
        _migrate(conn, schema, version, backfill)
        if version:
            log.info("journal %r: schema version %s upgraded to %s", path, version, SCHEMA_VERSION)
    _check_events(conn, schema, path)


def _version(conn: Connection, schema: str, path: str, tables: set[str]) -> int:
    listing = ", ".join(sorted(tables))
    meta: dict[object, object] = {}
    if "meta" in tables:
        try:
            meta = dict(conn.execute(f"SELECT key, value FROM {schema}.meta").fetchall())
        except psycopg.Error:
            meta = {}  # a meta table of another shape: not ours
    if meta.get("application_id") != _APP_NAME:
        raise JournalCorrupt(
            path, f"schema {schema!r} is not a sagactor journal (tables: {listing})"
        )
    version = meta.get("schema_version")
    if not isinstance(version, str) or not version.isdecimal():
        raise JournalCorrupt(path, f"schema_version is {version!r}, not an integer")
    missing = {"events", "streams", "snapshots"} - tables
    if missing:
        raise JournalCorrupt(path, f"missing table(s) {', '.join(sorted(missing))}")
    return int(version)


def _migrate(
    conn: Connection,
    schema: str,
    version: int,
    backfill: Callable[[Connection, str], None] | None,
) -> None:
    """Each migration after ``version``; ``backfill`` fills the sagas table (version 2)."""
    with conn.transaction():
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement.format(s=schema))
            if step == 2 and backfill is not None:
                backfill(conn, schema)
        conn.execute(
            f"INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )


def _check_events(conn: Connection, schema: str, path: str) -> None:
    """The readers rely on the events table's column types: a changed table is refused."""
    columns: dict[str, str] = dict(
        conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'events'",
            (schema,),
        ).fetchall()
    )
    if columns != _EVENTS:
        raise JournalCorrupt(path, f"events table is malformed (columns {columns})")
