"""What the SQLite journal's writer takes in: queued batches, grouped for one commit each, and
the journal's state (open, closing, killed), which every put is ordered against.

The queue is a C ``SimpleQueue`` (no ``Condition`` to notify per append); ``None`` in it only
says "look at the state again". A group is every queued batch, up to :data:`MAX_GROUP`. A group
made only of batches nobody waits for (a coordinator's decision, acted on already: see
``Journal.append_unawaited``) waits up to :data:`UNAWAITED_WAIT` for an awaited batch to join
it (the participant's record its command causes, usually well within that), so a saga alone
syncs once per step instead of twice; an awaited batch is never held.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from sagactor.errors import RuntimeClosed
from sagactor.persistence.journal import DoneCallback, Record, Snapshot

__all__ = ["MAX_GROUP", "UNAWAITED_WAIT", "Batch", "Intake"]

MAX_GROUP: Final = 1000  # batches per transaction: bounds the blast radius of one failure
UNAWAITED_WAIT = 0.002  # seconds a group nobody waits for waits for company, at most

State = Literal["open", "closing", "killed"]


@dataclass(slots=True)
class Batch:
    records: tuple[Record, ...]
    on_done: DoneCallback
    snapshot: Snapshot | None
    unawaited: bool = False  # nobody waits for its commit (see Journal.append_unawaited)


class Intake:
    """The appenders put batches; the writer thread takes groups (:meth:`next_group`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.state: State = "open"
        self._lock = threading.Lock()  # orders puts against a change of state
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()

    def put(self, batch: Batch) -> None:
        with self._lock:
            if self.state == "killed":
                return  # a dead process writes nothing more
            if self.state == "closing":
                raise RuntimeClosed(f"journal {self.path!r} is closed")
            self._queue.put(batch)

    def to(self, state: State) -> None:
        """Close (what is queued is still written) or kill (nothing more is)."""
        with self._lock:
            if self.state != "killed":
                self.state = state
            self._queue.put(None)

    def next_group(self) -> Sequence[Batch] | None:
        """Every queued batch (up to MAX_GROUP), waiting for one while open; None to end:
        killed, or closing with nothing left to write."""
        while True:
            if self.state == "open":
                first = self._queue.get()
            else:
                try:
                    first = self._queue.get_nowait()
                except queue.Empty:
                    return None
            if self.state == "killed":
                return None
            if first is not None:
                break
        batches = [first]
        self._drain(batches)
        if all(batch.unawaited for batch in batches):
            self._await_company(batches)
        return batches

    def _drain(self, batches: list[Batch]) -> None:
        while len(batches) < MAX_GROUP:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return
            if more is not None:
                batches.append(more)

    def _await_company(self, batches: list[Batch]) -> None:
        """Wait (a moment at most) for an awaited batch to join a group nobody waits for."""
        deadline = time.monotonic() + UNAWAITED_WAIT
        while len(batches) < MAX_GROUP and self.state == "open":
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                more = self._queue.get(timeout=left)
            except queue.Empty:
                return
            if more is None:
                return  # a change of state: next_group looks at it next
            batches.append(more)
            if not more.unawaited:
                self._drain(batches)
                return
