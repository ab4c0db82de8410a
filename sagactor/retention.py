"""Retention: pruning the events of sagas that ended, now (``Runtime.prune``) or in the
background (``Runtime.open(..., retention=Retention(...))``), then giving the space back."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from .errors import DefinitionError, SagactorError
from .persistence.journal import Journal

__all__ = ["PruneReport", "Retention", "RetentionThread", "prune_journal"]

log = logging.getLogger("sagactor")


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What :meth:`Operations.prune` did."""

    sagas: int
    """Sagas whose events were deleted."""
    records: int
    """Journal records deleted (the sagas' own, and participant records they caused)."""
    reclaimed: int
    """Bytes given back to the file system."""


@dataclass(frozen=True, slots=True)
class Retention:
    """A retention setting for :meth:`~sagactor.Runtime.open`: every ``every`` seconds, prune
    the sagas that ended more than ``keep_for`` seconds ago, sparing the ``keep`` that ended
    last."""

    keep_for: float
    keep: int = 0
    every: float = 60.0
    keep_summary: bool = True

    def __post_init__(self) -> None:
        if self.keep_for < 0 or self.keep < 0 or self.every <= 0:
            raise DefinitionError(
                "Retention", f"needs keep_for, keep >= 0 and every > 0: {self}", kind="setting"
            )


def prune_journal(journal: Journal, before: float, keep: int, keep_summary: bool) -> PruneReport:
    """Prune ``journal`` in chunks (see :meth:`Operations.prune`); usable without a runtime."""
    sagas = records = 0
    while True:
        chosen = journal.prunable(before, keep, 1000)
        if not chosen:
            break
        records += journal.prune(chosen, keep_summary=keep_summary)
        sagas += len(chosen)  # a kept summary says events = 0: never chosen again
    return PruneReport(sagas, records, journal.reclaim())


class RetentionThread:
    """Prunes a runtime's journal every ``retention.every`` seconds until the journal closes."""

    def __init__(self, journal: Journal, retention: Retention) -> None:
        self.journal = journal
        self.retention = retention
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sagactor-retention", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        due = time.monotonic() + self.retention.every
        while not self.stopped.wait(min(0.5, self.retention.every)):
            if not self.journal.is_open:
                return
            if time.monotonic() < due:
                continue
            due = time.monotonic() + self.retention.every
            try:
                r = self.retention
                report = prune_journal(
                    self.journal, time.time() - r.keep_for, r.keep, r.keep_summary
                )
            except SagactorError as error:
                log.warning("retention: prune failed: %s", error)
                continue
            if report.sagas:
                log.info(
                    "retention: pruned %d saga(s), %d record(s), %d bytes reclaimed",
                    report.sagas,
                    report.records,
                    report.reclaimed,
                    extra={"sagactor": {"pruned": report.sagas, "records": report.records}},
                )

    def stop(self) -> None:
        self.stopped.set()
