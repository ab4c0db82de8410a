"""A journal in process memory: fast, not durable, and the reference for the contract.

It survives a simulated crash of the runtime (the object outlives the runtime), which lets the
crash tests run without a disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final

import msgspec

from .. import clock
from ..errors import JournalWriteError, StreamConflict
from ..names import SAGA_PREFIX
from .journal import DoneCallback, Journal, JournalStats, Record, Snapshot
from .packing import row_count
from .summaries import SagaQuery, SagaRow, SummaryKeeper, merge_rows, select, to_prune

__all__ = ["MemoryJournal"]

_FOLD_EVERY: Final = 10_000  # saga records stored before the sagas table is brought up to date


class MemoryJournal(Journal):
    """Records kept in dicts; appends commit synchronously under a lock."""

    durable = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, list[Record]] = {}
        self._all: list[Record] = []
        self._snapshots: dict[str, Snapshot] = {}
        self._caused: dict[str, list[Record]] = {}  # saga id -> records it caused (history)
        self._sagas: dict[str, SagaRow] = {}  # the sagas table, once _summarize has run
        self._unsummarized: list[Record] = []  # stored since: folded into rows when read
        self._gone: set[int] = set()  # positions of pruned records (read_all skips them)
        self._summaries = SummaryKeeper(lambda stream, n: self._streams.get(stream, [])[: n - 1])
        # A test hook: called before each commit; raising makes that commit fail.
        self.fault: Callable[[Sequence[Record]], None] | None = None
        self._stats = JournalStats()

    def append(
        self,
        records: Sequence[Record],
        on_done: DoneCallback,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        error: BaseException | None = None
        with self._lock:
            try:
                if self.fault is not None:
                    self.fault(records)
                self._check(records)
            except StreamConflict as conflict:
                error = conflict
            except OSError as io_error:
                error = JournalWriteError(str(io_error))
            else:
                now = clock.now()
                for record in records:
                    stored = Record(
                        record.stream,
                        record.seq,
                        record.type,
                        record.data,
                        record.ts or now,
                        record.cause,
                        record.final,
                        len(self._all) + 1,
                    )
                    self._streams.setdefault(record.stream, []).append(stored)
                    self._all.append(stored)
                    saga_id, slash, _ = record.cause.partition("/")
                    if slash:
                        self._caused.setdefault(saga_id, []).append(stored)
                    if record.stream.startswith(SAGA_PREFIX):
                        self._unsummarized.append(stored)
                if len(self._unsummarized) >= _FOLD_EVERY:
                    self._summarize()  # bounded, and each saga gets one row per fold
                if snapshot is not None:
                    self._snapshots[snapshot.stream] = snapshot
                done = self._stats  # each append is its own commit; nothing is synced
                self._stats = JournalStats(
                    done.commits + 1, done.batches + 1, done.rows + row_count(records)
                )
        on_done(error)

    @property
    def stats(self) -> JournalStats:
        return self._stats

    def _summarize(self) -> None:
        """Fold what was stored since into the sagas table, with the lock held: the rows are
        read far less often than sagas are written, so they are made when read."""
        if self._unsummarized:
            merge_rows(self._sagas, self._summaries.rows(self._unsummarized, clock.now()))
            self._unsummarized = []

    def _check(self, records: Sequence[Record]) -> None:
        next_seq: dict[str, int] = {}
        for record in records:
            expected = next_seq.get(record.stream)
            if expected is None:
                expected = len(self._streams.get(record.stream, ())) + 1
            if record.seq != expected:
                raise StreamConflict(record.stream, record.seq)
            next_seq[record.stream] = expected + 1

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        with self._lock:
            records = self._streams.get(stream, [])[after:]
        return records if limit is None else records[:limit]

    def read_prefix(self, prefix: str) -> Iterator[Record]:
        with self._lock:
            chosen = [
                self._streams[name] for name in sorted(self._streams) if name.startswith(prefix)
            ]
        for records in chosen:
            yield from list(records)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        with self._lock:
            records = self._all[after:]
            if self._gone:
                records = [r for r in records if r.position not in self._gone]
        return records if limit is None else records[:limit]

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        # Indexed by a cause's first part; a child saga's id ("<parent>/<step>") reads its
        # parent's entries and keeps its own (a cause starts with its saga's id and "/").
        top, _, _ = saga_id.partition("/")
        with self._lock:
            records = list(self._caused.get(top, ()))
        prefix = f"{saga_id}/"
        return [r for r in records if r.position > after and r.cause.startswith(prefix)]

    def latest(self, streams: Iterable[str]) -> dict[str, Record]:
        with self._lock:
            chosen = {name: self._streams.get(name) for name in streams}
        return {name: records[-1] for name, records in chosen.items() if records}

    def open_streams(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(
                name
                for name, records in self._streams.items()
                if name.startswith(prefix) and records and not records[-1].final
            )

    def streams(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(name for name in self._streams if name.startswith(prefix))

    def last_seq(self, stream: str) -> int:
        with self._lock:
            return len(self._streams.get(stream, ()))

    def load_snapshot(self, stream: str) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(stream)

    def sagas(self, query: SagaQuery) -> list[SagaRow]:
        with self._lock:
            self._summarize()
            if query.ids is not None:
                rows = [self._sagas[i] for i in query.ids if i in self._sagas]
            else:
                rows = list(self._sagas.values())
        return select(rows, query)

    def saga_row(self, saga_id: str) -> SagaRow | None:
        with self._lock:
            self._summarize()
            return self._sagas.get(saga_id)

    def saga_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            self._summarize()
            for row in self._sagas.values():
                counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def prunable(self, before: float, keep: int, limit: int) -> list[str]:
        with self._lock:
            self._summarize()
            rows = list(self._sagas.values())
        return to_prune(rows, before, keep)[:limit]

    def prune(self, saga_ids: Sequence[str], *, keep_summary: bool = True) -> int:
        """Deletes the sagas' streams and their history index. Participant records stay: this
        journal reads a stream by position in a list, which a hole would break (it lives as
        long as the process, so its size is the process's business)."""
        deleted = 0
        with self._lock:
            self._summarize()
            for saga_id in saga_ids:
                stream = f"saga/{saga_id}"
                records = self._streams.pop(stream, [])
                self._gone.update(r.position for r in records)
                deleted += len(records)
                self._snapshots.pop(stream, None)
                self._caused.pop(saga_id, None)
                row = self._sagas.pop(saga_id, None)
                if keep_summary and row is not None:  # the row stays; no event of it does
                    self._sagas[saga_id] = msgspec.structs.replace(row, events=0)
        return deleted

    def close(self) -> None:
        """Nothing to release: the records stay, for the next runtime to recover from."""
