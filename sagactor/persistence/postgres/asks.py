"""Operations asked of the process holding a saga's partition: the base schema's ``asks`` table.

A process that does not hold a saga's partition inserts a row (the partition, the saga, the
operation and its arguments, msgpack) and notifies the channel; the holder claims the row
(``taken``), runs the operation on its runtime and writes the answer (``answered``, a result or
an error), which the asker reads and then deletes. An asker that gets no answer in time
withdraws its row if nobody took it yet (nothing was done: it can say so); a row taken by a
holder that then died stays unanswered and is run again by the partition's next holder
(signals carry an id, so a second run delivers nothing twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .schema import Connection

__all__ = ["Answer", "Ask", "AsksTable", "create"]


def create(conn: Connection, base: str) -> None:
    """Make the table (inside the caller's transaction, which holds the base's lock)."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {base}.asks (id bigserial PRIMARY KEY, "
        "partition int NOT NULL, saga_id text NOT NULL, op text NOT NULL, args bytea NOT NULL, "
        "taken timestamptz, answered boolean NOT NULL DEFAULT false, result bytea, "
        "error_type text, error text)"
    )
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS asks_open ON {base}.asks (partition) WHERE NOT answered"
    )


class Ask(NamedTuple):
    row: int
    partition: int
    saga_id: str
    op: str
    args: bytes


class Answer(NamedTuple):
    result: bytes | None
    error_type: str | None
    error: str | None


class AsksTable:
    """The ``asks`` table of a base schema, from either side."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.channel = f"sagactor_asks_{base}"

    def ask(self, conn: Connection, partition: int, saga_id: str, op: str, args: bytes) -> int:
        with conn.transaction():
            row = conn.execute(
                f"INSERT INTO {self.base}.asks (partition, saga_id, op, args) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                (partition, saga_id, op, args),
            ).fetchone()
            conn.execute("SELECT pg_notify(%s, '')", (self.channel,))
        assert row is not None
        return int(row[0])

    def answer_of(self, conn: Connection, row: int) -> Answer | None:
        """The answer once there is one (the row is then deleted); None until then."""
        found = conn.execute(
            f"DELETE FROM {self.base}.asks WHERE id = %s AND answered "
            "RETURNING result, error_type, error",
            (row,),
        ).fetchone()
        if found is None:
            return None
        return Answer(None if found[0] is None else bytes(found[0]), found[1], found[2])

    def withdraw(self, conn: Connection, row: int) -> bool:
        """Take the ask back if nobody took it yet (True: it will never run)."""
        found = conn.execute(
            f"DELETE FROM {self.base}.asks WHERE id = %s AND taken IS NULL RETURNING id", (row,)
        ).fetchone()
        return found is not None

    def claim(self, conn: Connection, partitions: Sequence[int], limit: int = 100) -> list[Ask]:
        """The unanswered asks of these partitions (ones taken by a holder that died too)."""
        rows = conn.execute(
            f"UPDATE {self.base}.asks SET taken = clock_timestamp() WHERE id IN "
            f"(SELECT id FROM {self.base}.asks WHERE NOT answered AND partition = ANY(%s) "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING id, partition, saga_id, op, args",
            (list(partitions), limit),
        ).fetchall()
        return [Ask(int(r[0]), int(r[1]), r[2], r[3], bytes(r[4])) for r in sorted(rows)]

    def answer(self, conn: Connection, row: int, answer: Answer) -> None:
        conn.execute(
            f"UPDATE {self.base}.asks SET answered = true, result = %s, error_type = %s, "
            "error = %s WHERE id = %s",
            (answer.result, answer.error_type, answer.error, row),
        )
