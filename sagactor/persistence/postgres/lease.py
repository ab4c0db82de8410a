"""The lease that makes one runtime the active writer of a journal, and its fencing token.

One row of the ``leases`` table names the active runtime (``owner``), its fencing ``token``
and when the lease ``expires`` (the server's clock, so the machines' clocks never matter).
The active runtime renews it by a heartbeat; every group it writes first reads the row
``FOR SHARE`` in the group's own transaction and writes nothing unless the token is still its
own (:func:`check_token`). A takeover updates the row (token + 1), which waits for a group in
progress to commit: a group is either wholly before the takeover or refused after it. That is
the fencing: a runtime that was paused, partitioned or slow can never write after another one
took over, whatever it believes.

A lease may be taken over when it expired, or at once when its owner's database session is
gone (the process died: its socket closed, PostgreSQL ended the session). The owner's writer
session holds an advisory lock keyed by its token while it is active; a candidate that can
take that lock knows the session is gone. Clean closes give the lease up (expired at once).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
import zlib
from typing import Final

import psycopg

from .schema import Connection

log = logging.getLogger(__name__)

__all__ = [
    "LEASE_NAME",
    "check_token",
    "give_up",
    "make_owner",
    "relock",
    "renew",
    "token_key",
    "try_acquire",
]

LEASE_NAME: Final = "journal"
"""The one lease of a journal (the column leaves room for leases on parts of it)."""


def make_owner() -> str:
    """A name for this runtime in the lease: host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def token_key(schema: str, token: int) -> tuple[int, int]:
    """The advisory lock an active runtime's writer session holds for ``token``."""
    crc = zlib.crc32(schema.encode())
    first = crc - (1 << 32) if crc >= 1 << 31 else crc
    low = token & 0xFFFFFFFF
    return first, low - (1 << 32) if low >= 1 << 31 else low


def try_acquire(conn: Connection, schema: str, owner: str, ttl: float) -> int | None:
    """Take the lease for ``owner`` if it is free, expired, or its owner's session is gone;
    the new token, or None while another runtime holds it. ``conn`` (autocommit) is the
    writer's: it keeps the token's advisory lock for as long as the runtime is active."""
    expired = conn.execute(
        f"SELECT token FROM {schema}.leases WHERE name = %s AND expires <= clock_timestamp()",
        (LEASE_NAME,),
    ).fetchone()
    if expired is not None:
        _evict(conn, schema, int(expired[0]), ttl)
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{max(1, round(ttl * 1000))}ms'")
        row = conn.execute(
            f"SELECT token, expires > clock_timestamp() FROM {schema}.leases "
            "WHERE name = %s FOR UPDATE",
            (LEASE_NAME,),
        ).fetchone()
        if row is not None and row[1] and not _owner_gone(conn, schema, int(row[0])):
            return None
        token = 1 if row is None else int(row[0]) + 1
        # Locked before the row commits: nobody can read the new token and find it unlocked.
        if not _try_lock(conn, schema, token):
            return None
        conn.execute(
            f"INSERT INTO {schema}.leases (name, owner, token, expires, acquired) "
            "VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s), "
            "clock_timestamp()) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "token = excluded.token, expires = excluded.expires, acquired = excluded.acquired",
            (LEASE_NAME, owner, token, ttl),
        )
    return token


def _evict(conn: Connection, schema: str, token: int, ttl: float) -> None:
    """End the database session of an owner whose lease expired (found by the token's lock).

    A process paused in the middle of a group holds the lease's row (``FOR SHARE``) in an
    open transaction, which no server timeout ends while its pipeline is unfinished: the
    takeover would wait for it forever. Ending its session rolls that group back; when the
    process wakes, its next group finds the new token and is refused."""
    first, second = (key & 0xFFFFFFFF for key in token_key(schema, token))
    try:
        conn.execute(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2 "
            "AND granted AND pid <> pg_backend_pid() AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (max(1, round(ttl * 1000)), first, second),
        )
    except psycopg.errors.InsufficientPrivilege as error:
        log.warning("cannot end the session of the expired lease's owner: %s", error)


def _owner_gone(conn: Connection, schema: str, token: int) -> bool:
    if not _try_lock(conn, schema, token):
        return False  # its session lives (a paused process too: then only expiry frees it)
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", token_key(schema, token))
    return True


def _try_lock(conn: Connection, schema: str, token: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", token_key(schema, token)).fetchone()
    return bool(row and row[0])


def relock(conn: Connection, schema: str, token: int) -> bool:
    """On a new writer connection: hold the token's lock again (False if someone has it)."""
    return _try_lock(conn, schema, token)


def renew(conn: Connection, schema: str, token: int, ttl: float) -> bool:
    """Push the expiry on; False if the lease is no longer this token's (fenced)."""
    row = conn.execute(
        f"UPDATE {schema}.leases SET expires = clock_timestamp() + make_interval(secs => %s) "
        "WHERE name = %s AND token = %s RETURNING token",
        (ttl, LEASE_NAME, token),
    ).fetchone()
    return row is not None


def give_up(conn: Connection, schema: str, token: int) -> None:
    """A clean close: expire the lease now (a standby takes it at its next look) and unlock."""
    conn.execute(
        f"UPDATE {schema}.leases SET expires = '-infinity' WHERE name = %s AND token = %s",
        (LEASE_NAME, token),
    )
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", token_key(schema, token))


def check_token(schema: str) -> str:
    """The statement a write group runs first (parameter: the lease name); it returns the
    current token and holds the row against a takeover until the group commits."""
    return f"SELECT token FROM {schema}.leases WHERE name = %s FOR SHARE"
