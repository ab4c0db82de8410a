"""The journal contract: an append-only store of records grouped in streams.

Nothing above this module knows which backend is in use. A stream is ``saga/<id>`` or
``participant/<name>``; each record has a per-stream sequence number starting at 1, and an
append whose sequence numbers collide with stored ones is refused as a whole (optimistic
concurrency). Appends are asynchronous: the callback runs once the batch is durable (or has
failed), possibly on another thread; that lets a backend commit many actors' appends in one
transaction without any actor waiting for the disk.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Self

import msgspec

from ..errors import JournalError, JournalWriteError, RuntimeClosed, StreamConflict
from .summaries import SagaQuery, SagaRow, fold_rows, select, to_prune

__all__ = [
    "DoneCallback",
    "Journal",
    "JournalStats",
    "Record",
    "Snapshot",
    "StreamConflict",
    "upper_bound",
    "write_error",
]

DoneCallback = Callable[[BaseException | None], None]


def write_error(problem: str, cause: BaseException) -> JournalWriteError:
    """The error a failed write answers with, the backend's own error as its cause."""
    error = JournalWriteError(problem)
    error.__cause__ = cause
    return error


class Record(msgspec.Struct, frozen=True, array_like=True):
    """One journal entry. ``data`` is msgspec msgpack; ``type`` names the Struct it decodes to.

    ``final`` marks the record that ends a stream's active life (a saga's terminal event), so
    recovery can find in-flight streams without decoding every record. ``position`` is the
    global order, assigned by the journal on append (0 until then).
    """

    stream: str
    seq: int
    type: str
    data: bytes
    ts: float
    cause: str = ""
    final: bool = False
    position: int = 0


class Snapshot(msgspec.Struct, frozen=True, array_like=True):
    """A stream's folded state as of record ``seq``; written atomically with an append."""

    stream: str
    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class JournalStats:
    """What a journal has done since it was opened: counts that do not depend on the machine.

    Divide by the sagas run to see what one saga costs (a benchmark prints them).
    """

    commits: int = 0
    """Transactions committed (group commit makes this far less than ``batches``)."""
    batches: int = 0
    """Appends committed (each ``append`` call is one batch, empty ones included)."""
    rows: int = 0
    """Records stored."""
    syncs: int = 0
    """Commits that waited for the disk to flush (0 where commits are not synced)."""


class Journal(ABC):
    """Durable, ordered, append-only storage for records.

    Thread safety: every method may be called from any thread. ``append`` keeps the order of
    appends from one thread: callbacks of one thread's appends run in the order they were made.
    """

    durable: bool = True
    path: str = ":memory:"

    @abstractmethod
    def append(
        self,
        records: Sequence[Record],
        on_done: DoneCallback,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        """Store ``records`` (and ``snapshot``) atomically, then call ``on_done(None)``.

        On failure nothing of the batch is stored and ``on_done`` gets the error
        (:class:`StreamConflict`, or :class:`~sagactor.errors.JournalWriteError`). A journal
        that was killed or closed never calls ``on_done`` for appends it did not commit.
        """

    def append_unawaited(
        self,
        records: Sequence[Record],
        on_done: DoneCallback,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        """:meth:`append` for a batch nobody waits for (a decision acted on before its commit:
        see :mod:`sagactor.actors.recomputable`; ``on_done`` only matters on failure). A
        journal may hold it back a moment so that it shares the commit of the append that
        follows it; by default it is appended as any other."""
        self.append(records, on_done, snapshot=snapshot)

    @abstractmethod
    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        """The stream's records with ``seq > after``, in order."""

    @abstractmethod
    def read_prefix(self, prefix: str) -> Iterator[Record]:
        """Every record of every stream whose name starts with ``prefix``, by stream then seq."""

    @abstractmethod
    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        """Records of all streams with ``position > after``, in global order."""

    @abstractmethod
    def open_streams(self, prefix: str) -> list[str]:
        """Streams starting with ``prefix`` that have records but no ``final`` one."""

    @abstractmethod
    def streams(self, prefix: str) -> list[str]:
        """All streams starting with ``prefix``, sorted."""

    @abstractmethod
    def last_seq(self, stream: str) -> int:
        """The stream's highest sequence number, 0 when it is empty."""

    @abstractmethod
    def load_snapshot(self, stream: str) -> Snapshot | None:
        """The stream's latest snapshot, if any."""

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        """Records of any stream whose ``cause`` starts with ``<saga_id>/`` and whose
        ``position > after``, in global order: what one saga made every participant do.

        This fallback scans the whole journal; a backend should answer from an index, so that
        a saga's history costs its own records, not the journal's size.
        """
        prefix = f"{saga_id}/"
        found = [r for r in self.read_prefix("") if r.cause.startswith(prefix)]
        return sorted((r for r in found if r.position > after), key=lambda r: r.position)

    def latest(self, streams: Iterable[str]) -> dict[str, Record]:
        """The last record of each of ``streams`` that has one (one query where possible)."""
        found: dict[str, Record] = {}
        for stream in streams:
            last = self.last_seq(stream)
            records = self.read(stream, after=last - 1) if last else []
            if records:
                found[stream] = records[-1]
        return found

    def read_open(self, prefix: str) -> Iterator[tuple[str, list[Record]]]:
        """Each stream under ``prefix`` that has no ``final`` record, with its records, sorted
        by stream: what recovery replays.

        This fallback reads stream by stream; a backend should answer in a few range scans, so
        that reopening a journal with many in-flight sagas costs a few queries, not one each.
        """
        for stream in self.open_streams(prefix):
            records = self.read(stream)
            if records and not records[-1].final:  # it may have ended meanwhile
                yield stream, records

    @property
    def stats(self) -> JournalStats:
        """Counts of what this journal object has done (zeros where a backend keeps none)."""
        return JournalStats()

    # -- the sagas table: one summary row per saga (see persistence.summaries) -------------------
    # A backend keeps the rows in the transaction of the saga's events and answers these from
    # its indexes. The fallbacks below fold every saga stream: right, but a scan.

    def sagas(self, query: SagaQuery) -> list[SagaRow]:
        """The summary rows ``query`` wants, newest first."""
        return select(fold_rows(self.read_prefix("saga/")), query)

    def saga_row(self, saga_id: str) -> SagaRow | None:
        """The saga's summary row, if the journal has one."""
        rows = list(fold_rows(self.read(f"saga/{saga_id}")))
        return rows[0] if rows else None

    def saga_counts(self) -> dict[str, int]:
        """How many sagas have each status (statuses with none are left out)."""
        counts: dict[str, int] = {}
        for row in fold_rows(self.read_prefix("saga/")):
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def prunable(self, before: float, keep: int, limit: int) -> list[str]:
        """Up to ``limit`` ids of sagas that ended for good before ``before``, sparing the
        ``keep`` that ended last."""
        return to_prune(fold_rows(self.read_prefix("saga/")), before, keep)[:limit]

    def prune(self, saga_ids: Sequence[str], *, keep_summary: bool = True) -> int:
        """Delete the events of these ended sagas, and the records they caused in participant
        streams that a snapshot covers (the participant's state no longer needs them). Their
        summary rows stay unless ``keep_summary`` is false. Returns the records deleted.

        Raises:
            JournalError: This journal cannot delete.
        """
        raise JournalError(f"{type(self).__name__} cannot prune")

    def reclaim(self) -> int:
        """Give free space back to the system where the backend can; returns bytes freed."""
        return 0

    @abstractmethod
    def close(self) -> None:
        """Finish pending appends and release the storage. Idempotent."""

    def kill(self) -> None:
        """Stop at once, as a crashed process would: pending appends are dropped, not committed."""
        self.close()

    def append_and_wait(
        self, records: Sequence[Record], *, snapshot: Snapshot | None = None
    ) -> None:
        """Blocking append; raises the commit's error."""
        done = threading.Event()
        failure: list[BaseException] = []

        def on_done(error: BaseException | None) -> None:
            if error is not None:
                failure.append(error)
            done.set()

        self.append(records, on_done, snapshot=snapshot)
        while not done.wait(0.05):
            if not self.is_open:
                raise RuntimeClosed("the journal was closed or killed before the append committed")
        if failure:
            raise failure[0]

    @property
    def is_open(self) -> bool:
        """False once closed or killed: appends will never complete."""
        return True

    def flush(self) -> None:
        """Wait until every append made so far has committed or failed (errors are the
        appenders' business, not the caller's)."""
        with contextlib.suppress(JournalError, RuntimeClosed):
            self.append_and_wait([])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (None: no bound), so a
    prefix scan is a range scan of an index: ``prefix <= stream < upper_bound(prefix)``."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000  # surrogates cannot be stored; skip past them
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None
