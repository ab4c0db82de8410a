"""Slots under a saga's ``max_in_flight``, and the fair queue of the sagas waiting for one.

Per saga name (every version counts toward one set of slots): the ids admitted and not yet
ended, and a heap of the queued ones ordered by ``(-priority, ticket)``: a higher priority
first, and within one priority the order they were queued in (first come, first served). The
ticket is journaled with the saga's ``SagaQueued``, so the order survives a restart: recovery
hands every queued saga back here (:meth:`Admission.recovered`) and every running one takes
its slot again before any queued one is admitted.

The coordinator owns the decisions (it is the only writer, on its turn); the lock is for the
readers on other threads: ``Runtime.status`` asks for a queued saga's position. A slot is
freed once the end of its saga is durable (an end lost in a crash never admits one more), and
taken before the admission is journaled (so a burst of ends admits each queued saga once).

A stuck or dead saga gives its slot back (nothing of it runs); when an operator resumes or
revives it, it runs at once rather than wait behind sagas that never ran.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass, field

from ..errors import InvalidPriority
from ..messages import SagaStatus

__all__ = ["Admission", "check_priority"]


def check_priority(priority: object) -> int:
    """``priority`` if it is an int (not a bool); :class:`InvalidPriority` otherwise."""
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidPriority(priority)
    return priority


@dataclass(slots=True)
class _Slots:
    running: set[str] = field(default_factory=set)
    queue: list[tuple[int, int, str]] = field(default_factory=list)  # a heap
    limit: int | None = None  # as the latest start (or recovery) of the name said


class Admission:
    """Which sagas hold a slot, and which wait for one, per saga name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, _Slots] = {}
        self._queued: dict[str, tuple[str, int, int]] = {}  # id -> (name, priority, ticket)
        self._next_ticket = 1

    def must_wait(self, name: str, limit: int | None) -> bool:
        """A new saga of ``name`` must queue: its slots are full, or others wait already
        (a newcomer never passes a queued saga, even when a slot just freed)."""
        if limit is None:
            return False
        with self._lock:
            slots = self._names.setdefault(name, _Slots())
            slots.limit = limit
            return len(slots.running) >= limit or bool(slots.queue)

    def ticket(self) -> int:
        """The next ticket: later than every ticket queued so far (and recovered)."""
        with self._lock:
            self._next_ticket += 1
            return self._next_ticket - 1

    def take(self, name: str, saga_id: str) -> None:
        """``saga_id`` runs (admitted, started free, or found running at recovery)."""
        with self._lock:
            self._queued.pop(saga_id, None)
            self._names.setdefault(name, _Slots()).running.add(saga_id)

    def enqueue(self, name: str, saga_id: str, priority: int, ticket: int) -> None:
        """``saga_id`` waits for a slot (journaled queued, or found queued at recovery)."""
        with self._lock:
            slots = self._names.setdefault(name, _Slots())
            slots.running.discard(saga_id)  # an admission whose commit failed waits again
            if saga_id not in self._queued:
                self._queued[saga_id] = (name, priority, ticket)
                heapq.heappush(slots.queue, (-priority, ticket, saga_id))
            self._next_ticket = max(self._next_ticket, ticket + 1)

    def release(self, name: str, saga_id: str) -> None:
        """``saga_id`` ended (or left the queue, cancelled): its slot or place is free."""
        with self._lock:
            slots = self._names.get(name)
            if slots is not None:
                slots.running.discard(saga_id)
            if self._queued.pop(saga_id, None) is not None and slots is not None:
                slots.queue = [entry for entry in slots.queue if entry[2] != saga_id]
                heapq.heapify(slots.queue)

    def due(self, name: str) -> list[str]:
        """The queued sagas that get the slots free now, best first; each takes its slot."""
        admitted: list[str] = []
        with self._lock:
            slots = self._names.get(name)
            while slots is not None and slots.queue:
                if slots.limit is not None and len(slots.running) >= slots.limit:
                    break
                _, _, saga_id = heapq.heappop(slots.queue)
                self._queued.pop(saga_id, None)
                slots.running.add(saga_id)
                admitted.append(saga_id)
        return admitted

    def names(self) -> list[str]:
        """The saga names with sagas queued."""
        with self._lock:
            return [name for name, slots in self._names.items() if slots.queue]

    def recovered(
        self, name: str, saga_id: str, status: SagaStatus, queue: tuple[int, int], limit: int
    ) -> None:
        """A saga found in flight at recovery (or reloaded): it waits again if it was queued,
        else it holds a slot while it runs."""
        with self._lock:
            self._names.setdefault(name, _Slots()).limit = limit
        if status is SagaStatus.QUEUED:
            self.enqueue(name, saga_id, *queue)
        elif not status.terminal:
            self.take(name, saga_id)

    def position(self, saga_id: str) -> tuple[int, int] | None:
        """Where a queued saga stands: (its place, 1 = next; how many wait), or None."""
        with self._lock:
            found = self._queued.get(saga_id)
            if found is None:
                return None
            name, priority, ticket = found
            queue = self._names[name].queue
            mine = (-priority, ticket)
            ahead = sum(1 for entry in queue if entry[:2] < mine)
            return ahead + 1, len(queue)

    def counts(self, name: str) -> tuple[int, int]:
        """(running, queued) sagas of ``name`` this runtime knows of."""
        with self._lock:
            slots = self._names.get(name)
            return (0, 0) if slots is None else (len(slots.running), len(slots.queue))
