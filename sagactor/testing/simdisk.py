"""The simulated journal: the in-memory journal behind a seeded "disk" that the simulation
schedules like an actor (:class:`~sagactor.actors.deterministic.Device`).

The model, after SQLite's writer (group commit) and its ``synchronous`` setting:

* ``append`` only queues the batch, as the writer thread's queue does: nothing is stored or
  answered yet. A disk step commits the oldest few queued batches as **one group** (one
  transaction): each batch is stored whole or refused whole, then each appender is answered.
* ``synchronous="full"``: a group is synced as it commits, so an answered append is on disk.
  ``synchronous="normal"``: a committed group is answered at once and synced by a later disk
  step; until then it survives a process crash (the operating system has it), not a power loss.
* A **crash** (``kill``) drops the queue: batches written but not yet answered are lost, under
  either setting. A **power loss** (``power_loss`` set before the crash) also loses committed
  groups not yet synced (only under ``"normal"``).
* A **torn group**: the power fails while a group is being written, after some of its records
  (``torn_at``: the group's number). Reopening keeps the disk up to the last whole group (as
  SQLite's recovery drops WAL frames past the last commit): none of the torn group is readable,
  which :attr:`problems` would report otherwise.
* **Write errors** at the groups numbered in ``fail_at``: the group fails (every batch in it
  gets a :class:`~sagactor.errors.JournalWriteError`), as an I/O error fails SQLite's group.
* **Disk full** from group ``full_at`` on, for ``full_for`` (virtual) seconds: every group is
  refused with SQLite's error text (``database or disk is full``) until space frees.

What the runtime must then do is what it does over SQLite: act on nothing unanswered, retry or
rebuild after a refused write, and lose nothing answered under ``"full"``. Not simulated: a
slow disk (a commit takes no virtual time), pruning across a power loss, reads failing.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Sequence
from typing import Literal

import msgspec

from .. import clock
from ..errors import JournalWriteError, RuntimeClosed
from ..persistence.journal import DoneCallback, Record, Snapshot
from ..persistence.memory import MemoryJournal

__all__ = ["DISK_FULL", "SimJournal"]

DISK_FULL = "database or disk is full"  # SQLite's SQLITE_FULL message, as the writer reports it

Batch = tuple[list[Record], DoneCallback, Snapshot | None]
Synchronous = Literal["full", "normal"]


class SimJournal(MemoryJournal):
    """The in-memory journal on a simulated disk (see the module). ``seed`` picks group sizes.

    ``heal()`` stops every planned disk fault (the simulation's last restart)."""

    def __init__(
        self,
        seed: int = 0,
        *,
        synchronous: Synchronous = "full",
        fail_at: set[int] = frozenset(),  # type: ignore[assignment]
        group_max: int = 4,
    ) -> None:
        super().__init__()
        self.random = random.Random(seed)
        self.synchronous = synchronous
        self.group_max = group_max
        self.fail_at = set(fail_at)
        self.full_at = 0  # the group from which the disk is full (0: never)
        self.full_for = 0.0  # ... for this many seconds once it first refuses
        self._full_until: float | None = None
        self.torn_at = 0  # the group the power fails in the middle of (0: none)
        self.on_torn: Callable[[], None] | None = None  # the simulation crashes the runtime
        self.power_loss = False  # the next crash is a power loss (else a process crash)
        self.groups = 0  # groups the disk tried to commit
        self.failed = 0  # groups refused (write errors and disk full)
        self.refused_full = 0  # ... of them for a full disk
        self.crashes = 0  # kills (a crash of the runtime, or its close after one)
        self.power_losses = 0  # crashes that took the power too
        self.lost = 0  # batches lost in crashes (queued, or committed but not synced)
        self.lost_answered = 0  # ... of them answered already (a power loss under "normal")
        self.problems: list[str] = []  # broken promises of the disk itself (should stay empty)
        self._queue: collections.deque[Batch] = collections.deque()
        self._answers: list[tuple[DoneCallback, BaseException | None]] = []
        self._synced: list[tuple[list[Record], Snapshot | None]] = []  # what a power loss keeps
        self._unsynced: list[tuple[list[Record], Snapshot | None]] = []

    # -- the runtime's side ------------------------------------------------------------------

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        self._queue.append((list(records), on_done, snapshot))

    def flush(self) -> None:
        """Commit everything queued now (the caller waits for the disk); the appenders'
        answers come on the disk's next step, as answers from a writer thread would."""
        while self._queue:
            self._commit(len(self._queue), self._answers)

    def append_and_wait(
        self, records: Sequence[Record], *, snapshot: Snapshot | None = None
    ) -> None:
        crashes = self.crashes
        self.flush()
        answers: list[tuple[DoneCallback, BaseException | None]] = []
        if self.crashes == crashes:  # a dead process writes nothing more
            self._queue.append((list(records), lambda error: None, snapshot))
            self._commit(1, answers)
        if not answers:  # the power failed in the middle of it
            raise RuntimeClosed("the journal was killed before the append committed")
        if answers[0][1] is not None:
            raise answers[0][1]

    def kill(self) -> None:
        """A crash: the queue is lost; a power loss loses what was not synced too."""
        self.crashes += 1
        self.lost += len(self._queue)
        self._queue.clear()
        self._answers.clear()
        if self.power_loss:
            self.power_loss = False
            self.power_losses += 1
            self.lost += len(self._unsynced)
            self.lost_answered += len(self._unsynced)
            self._unsynced.clear()
            self._reopen()

    def close(self) -> None:
        """A clean shutdown: the writer finishes its queue and the disk is synced."""
        self.flush()
        self._answer(self._answers)
        self._sync()

    def heal(self) -> None:
        self.fail_at.clear()
        self.full_at = 0
        self._full_until = None
        self.torn_at = 0

    # -- the disk's side (a Device) ----------------------------------------------------------

    def busy(self) -> bool:
        return bool(self._queue or self._answers or self._unsynced)

    def work(self) -> None:
        """One step: answer flushed batches, commit a group, or sync (seeded)."""
        if self._answers:
            self._answer(self._answers)
        elif self._queue and (not self._unsynced or self.random.random() < 0.5):
            answers: list[tuple[DoneCallback, BaseException | None]] = []
            self._commit(self.random.randint(1, min(len(self._queue), self.group_max)), answers)
            self._answer(answers)
        else:
            self._sync()

    def _commit(self, count: int, answers: list[tuple[DoneCallback, BaseException | None]]) -> None:
        group = [self._queue.popleft() for _ in range(count)]
        self.groups += 1
        if self.groups == self.torn_at and self.on_torn is not None:
            self._tear(group)
            return
        error = self._refusal()
        if error is not None:
            self.failed += 1
            answers.extend((on_done, error) for _, on_done, _ in group)
            return
        now = clock.now()
        for records, on_done, snapshot in group:
            stored = [r if r.ts else msgspec.structs.replace(r, ts=now) for r in records]
            outcome: list[BaseException | None] = []
            MemoryJournal.append(self, stored, outcome.append, snapshot=snapshot)
            if outcome[0] is None and stored:
                written = self._synced if self.synchronous == "full" else self._unsynced
                written.append((stored, snapshot))
            answers.append((on_done, outcome[0]))

    def _refusal(self) -> JournalWriteError | None:
        if self.groups in self.fail_at:
            return JournalWriteError(f"simulated I/O error at group {self.groups}")
        if self.full_at and self.groups >= self.full_at:
            now = clock.now()
            if self._full_until is None:
                self._full_until = now + self.full_for
            if now < self._full_until:
                self.refused_full += 1
                return JournalWriteError(DISK_FULL)
        return None

    def _tear(self, group: list[Batch]) -> None:
        """The power fails after the first half of the group's batches reached the disk, with
        no commit record after them: reopening must find none of the group."""
        written = group[: max(1, len(group) // 2)]
        for records, _, snapshot in written:
            MemoryJournal.append(self, records, lambda error: None, snapshot=snapshot)
        torn = [r for records, _, _ in written for r in records]
        self.power_loss = True
        self.on_torn()  # type: ignore[misc]  # the runtime dies: kill() reopens the disk
        for record in torn:
            stored = self.read(record.stream, after=record.seq - 1, limit=1)
            if stored and stored[0].cause == record.cause and stored[0].data == record.data:
                self.problems.append(f"a torn group left {record.stream}#{record.seq} behind")

    @staticmethod
    def _answer(answers: list[tuple[DoneCallback, BaseException | None]]) -> None:
        done = list(answers)
        answers.clear()
        for on_done, error in done:
            on_done(error)

    def _sync(self) -> None:
        self._synced.extend(self._unsynced)
        self._unsynced.clear()

    def _reopen(self) -> None:
        """Rebuild the readable journal from what the disk kept (after a power loss)."""
        fault, synced = self.fault, self._synced
        MemoryJournal.__init__(self)
        self.fault = fault
        for records, snapshot in synced:
            MemoryJournal.append(self, records, lambda error: None, snapshot=snapshot)
