"""A standby's view of the journal: every read, no write (see :mod:`sagactor.cluster`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from ..engine import Engine
from ..errors import NotActive
from ..persistence.journal import DoneCallback, Journal, JournalStats, Record, Snapshot
from ..persistence.summaries import SagaQuery, SagaRow

__all__ = ["StandbyView", "require_active"]


def require_active(engine: Engine, operation: str) -> None:
    """Raise :class:`NotActive` if ``engine`` is a standby's (it must not write)."""
    if isinstance(engine.journal, StandbyView):
        raise NotActive(operation)


class StandbyView(Journal):
    """The journal as a standby's engine sees it: every read, no write. Closing it closes the
    journal until the standby is promoted (then the journal is the new engine's)."""

    def __init__(self, journal: Journal) -> None:
        self.inner = journal
        self.path = journal.path
        self.detached = False

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        on_done(NotActive("append"))

    def read(self, stream: str, after: int = 0, limit: int | None = None) -> list[Record]:
        return self.inner.read(stream, after, limit)

    def read_prefix(self, prefix: str) -> Iterator[Record]:
        return self.inner.read_prefix(prefix)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        return self.inner.read_all(after, limit)

    def open_streams(self, prefix: str) -> list[str]:
        return self.inner.open_streams(prefix)

    def streams(self, prefix: str) -> list[str]:
        return self.inner.streams(prefix)

    def last_seq(self, stream: str) -> int:
        return self.inner.last_seq(stream)

    def load_snapshot(self, stream: str) -> Snapshot | None:
        return self.inner.load_snapshot(stream)

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        return self.inner.read_caused(saga_id, after)

    def latest(self, streams: Iterable[str]) -> dict[str, Record]:
        return self.inner.latest(streams)

    def read_open(self, prefix: str) -> Iterator[tuple[str, list[Record]]]:
        return self.inner.read_open(prefix)

    @property
    def stats(self) -> JournalStats:
        return self.inner.stats

    def sagas(self, query: SagaQuery) -> list[SagaRow]:
        return self.inner.sagas(query)

    def saga_row(self, saga_id: str) -> SagaRow | None:
        return self.inner.saga_row(saga_id)

    def saga_counts(self) -> dict[str, int]:
        return self.inner.saga_counts()

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    def prunable(self, before: float, keep: int, limit: int) -> list[str]:
        raise NotActive("prune")

    def prune(self, saga_ids: Sequence[str], *, keep_summary: bool = True) -> int:
        raise NotActive("prune")

    def reclaim(self) -> int:
        raise NotActive("prune")

    def flush(self) -> None:
        pass  # nothing of a standby is ever queued

    def close(self) -> None:
        if not self.detached:
            self.inner.close()

    def kill(self) -> None:
        if not self.detached:
            self.inner.kill()
