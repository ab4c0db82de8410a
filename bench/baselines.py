"""Same-run baselines: a bare pykka message chain, and raw sqlite3 inserting sagactor's rows.

**Bare pykka**: one coordinator actor and four participant actors (``ThreadingActor``, like
sagactor's), where a "saga" is a request passed along the chain coordinator -> participant ->
coordinator once per step, with ``tell`` only and a ``Future`` per saga for the caller: the
shape of sagactor's orchestration minus the state machine, the journal, the inbox, the
participants' event-sourced state and the timers. Driven like :func:`bench.workload.window`.

**Raw sqlite3**: the rows a durable sagactor run stored (read back from its journal), inserted
into a fresh file with the journal's own ``events`` schema and indexes (copied from the file),
WAL, ``synchronous=FULL``, in transactions of the same number of rows as sagactor's groups
averaged (rows / commits in that run): the floor under any SQLite journal.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

__all__ = ["BarePykka", "raw_sqlite_rows_per_s"]

STEPS = 4
WAIT = 60.0


@dataclass(frozen=True, slots=True)
class _Start:
    saga: int
    done: Future[int]


@dataclass(frozen=True, slots=True)
class _Command:
    saga: int
    step: int
    reply_to: Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class _Reply:
    saga: int
    step: int


class _Participant(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[int, int] = {}

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Command):
            self.applied[message.saga] = message.step  # a token of state
            message.reply_to(_Reply(message.saga, message.step))


class _Coordinator(pykka.ThreadingActor):
    def __init__(self, participants: list[pykka.ActorRef[Any]]) -> None:
        super().__init__()
        self.participants = participants
        self.waiting: dict[int, Future[int]] = {}

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Start):
            self.waiting[message.saga] = message.done
            self._send(message.saga, 0)
        elif isinstance(message, _Reply):
            if message.step + 1 < len(self.participants):
                self._send(message.saga, message.step + 1)
            else:
                self.waiting.pop(message.saga).set_result(message.saga)

    def _send(self, saga: int, step: int) -> None:
        self.participants[step].tell(_Command(saga, step, self.actor_ref.tell))


class BarePykka:
    """The chain, started once; ``window`` runs sagas through it."""

    def __init__(self) -> None:
        self.participants = [_Participant.start() for _ in range(STEPS)]
        self.coordinator = _Coordinator.start(self.participants)
        self.made = 0

    def start(self) -> Future[int]:
        done: Future[int] = Future()
        self.coordinator.tell(_Start(self.made, done))
        self.made += 1
        return done

    def window(self, in_flight: int, total: int) -> float:
        """Sagas/s with one driver keeping ``in_flight`` sagas outstanding."""
        outstanding: deque[Future[int]] = deque()
        began = time.perf_counter()
        for _ in range(total):
            if len(outstanding) >= in_flight:
                outstanding.popleft().result(WAIT)
            outstanding.append(self.start())
        while outstanding:
            outstanding.popleft().result(WAIT)
        return total / (time.perf_counter() - began)

    def close(self) -> None:
        refs: list[pykka.ActorRef[Any]] = [self.coordinator, *self.participants]
        for ref in refs:
            ref.stop()

    def __enter__(self) -> BarePykka:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _events_schema(journal_file: Path) -> tuple[list[str], list[str]]:
    """The journal's ``events`` DDL (table and indexes) and its insertable columns."""
    with sqlite3.connect(journal_file) as conn:
        ddl = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'events' AND sql IS NOT NULL "
                "ORDER BY type DESC"  # the table before its indexes
            )
        ]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    return ddl, columns


def raw_sqlite_rows_per_s(journal_file: Path, group: int, limit: int = 50_000) -> float:
    """Rows/s inserting (up to ``limit`` of) the journal's event rows in ``group``-row
    transactions into a fresh file of the same schema."""
    ddl, columns = _events_schema(journal_file)
    names = [c for c in columns if c != "position"]  # the journal assigns positions
    with sqlite3.connect(journal_file) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(names)} FROM events ORDER BY position LIMIT ?", (limit,)
        ).fetchall()
    insert = f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    group = max(1, group)
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(Path(directory) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in ddl:
            conn.execute(statement)
        began = time.perf_counter()
        for first in range(0, len(rows), group):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows[first : first + group])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - began
        conn.close()
    return len(rows) / elapsed
