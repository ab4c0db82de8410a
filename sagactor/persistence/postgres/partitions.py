"""Several runtimes sharing the work of one PostgreSQL database: the saga ids split into N
partitions, each a journal of its own with its own lease.

Partition ``p`` of base schema ``s`` is the journal in schema ``s_p<p>`` (its events, sagas,
participant streams, starts and lease): the lease of that journal is the partition's lease
(owner, fencing token, expiry), and every write group of the partition checks that token in
its own transaction (:func:`.writes.write_group`), so a process that lost a partition cannot
write to it. A saga belongs to partition ``crc32(id) % N``, for ever.

The processes sharing the database register in the base schema's ``members`` table (a row
each, renewed like a lease); each takes partitions while it holds fewer than its fair share,
``ceil(N / live members)``, and gives back what it holds beyond it (:class:`Gate` is that
rule inside one process; :class:`PartitionJournal` asks it before taking a partition's lease).
The layout (N) is written once in the base schema; a process with another N is refused.
"""

from __future__ import annotations

import contextlib
import math
import threading
import uuid
import zlib
from typing import Any, Final

import psycopg

from sagactor.errors import DefinitionError, JournalCorrupt, JournalError

from . import asks
from .journal import PostgresJournal
from .lease import make_owner
from .schema import Connection, valid_schema
from .urls import redact, scrub

__all__ = [
    "MAX_PARTITIONS",
    "Gate",
    "Members",
    "PartitionJournal",
    "connect",
    "id_in",
    "partition_of",
    "partition_schema",
]

MAX_PARTITIONS: Final = 256


def partition_of(saga_id: str, partitions: int) -> int:
    """The partition a saga id belongs to (the same in every process)."""
    return zlib.crc32(saga_id.encode()) % partitions


def id_in(partition: int, partitions: int) -> str:
    """A new random saga id that belongs to ``partition`` (N tries on average)."""
    while True:
        saga_id = str(uuid.uuid4())
        if partition_of(saga_id, partitions) == partition:
            return saga_id


def connect(url: str) -> Connection:
    """A connection of its own (autocommit) to the database at ``url``."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as error:
        problem = scrub(str(error), url)
        raise JournalError(f"journal {redact(url)!r}: cannot connect: {problem}") from None


def partition_schema(base: str, partition: int) -> str:
    return valid_schema(f"{base}_p{partition}")


class Members:
    """The base schema's ``members`` table and layout: who shares the partitions."""

    def __init__(self, url: str, base: str, partitions: int) -> None:
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise DefinitionError(
                "Partitioned",
                f"partitions must be 1 to {MAX_PARTITIONS}, not {partitions}",
                kind="setting",
            )
        self.base = valid_schema(base)
        self.partitions = partitions
        self.member = make_owner()
        self._url = url
        self.conn = connect(url)  # this object's alone (one thread: the heartbeat's)
        try:
            self._prepare()
        except BaseException:
            self.conn.close()
            raise

    def _prepare(self) -> None:
        s = self.base
        with self.conn.transaction():
            # One process at a time makes the tables (CREATE ... IF NOT EXISTS races).
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (zlib.crc32(s.encode()),))
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.layout (one int PRIMARY KEY CHECK (one = 1), "
                "partitions int NOT NULL)"
            )
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.members (member text PRIMARY KEY, "
                "expires timestamptz NOT NULL)"
            )
            asks.create(self.conn, s)
            self.conn.execute(
                f"INSERT INTO {s}.layout VALUES (1, %s) ON CONFLICT DO NOTHING",
                (self.partitions,),
            )
            row = self.conn.execute(f"SELECT partitions FROM {s}.layout").fetchone()
        if row is None or int(row[0]) != self.partitions:
            found = None if row is None else row[0]
            raise JournalCorrupt(
                s, f"is split into {found} partitions, not {self.partitions} (open with that)"
            )

    def beat(self, ttl: float) -> int:
        """Renew this member's row; the number of live members (this one included)."""
        s = self.base
        if self.conn.broken or self.conn.closed:  # a restarted server, a network cut
            self.conn = connect(self._url)
        self.conn.execute(
            f"INSERT INTO {s}.members VALUES (%s, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (member) DO UPDATE SET expires = excluded.expires",
            (self.member, ttl),
        )
        self.conn.execute(
            f"DELETE FROM {s}.members WHERE expires < clock_timestamp() - interval '1 hour'"
        )
        row = self.conn.execute(
            f"SELECT count(*) FROM {s}.members WHERE expires > clock_timestamp()"
        ).fetchone()
        return max(1, int(row[0]) if row else 1)

    def leave(self) -> None:
        """Delete this member's row (it would expire anyway) and disconnect."""
        with contextlib.suppress(psycopg.Error):
            self.conn.execute(f"DELETE FROM {self.base}.members WHERE member = %s", (self.member,))
        self.conn.close()


class Gate:
    """One process's rule for taking partitions: hold at most ``ceil(N / live members)``."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.live = 1
        self.lock = threading.RLock()  # a take (check, then acquire) is one step per process
        self.holders: set[PartitionJournal] = set()
        self.closing = False

    @property
    def share(self) -> int:
        return math.ceil(self.partitions / max(1, self.live))

    def held(self) -> int:
        with self.lock:
            return sum(1 for journal in self.holders if journal.holding)

    def may_take(self) -> bool:
        return not self.closing and self.held() < self.share


class PartitionJournal(PostgresJournal):
    """One partition's journal: a standby that takes the lease only when :class:`Gate` allows."""

    def __init__(self, url: str, *, gate: Gate, partition: int, **options: Any) -> None:
        self.gate = gate
        self.partition = partition
        super().__init__(url, standby=True, **options)

    @property
    def holding(self) -> bool:
        """True while this journal holds its partition's lease and may write."""
        return self.token is not None and self._fenced is None and self.is_open

    @property
    def fenced(self) -> bool:
        return self._fenced is not None

    def _first_take(self, conn: Connection, standby: bool, owner: str) -> int | None:
        with self.gate.lock:
            if not self.gate.may_take():
                return None
            token = super()._first_take(conn, standby, owner)
            if token is not None:
                self.token = token  # counted as held at once, before the open completes
                self.gate.holders.add(self)
            return token

    def _take(self) -> bool:
        with self.gate.lock:
            if not self.gate.may_take():
                return False
            taken = super()._take()
            if taken:
                self.gate.holders.add(self)
            return taken
