"""What the journal contract suite's tests share: a waiter for append callbacks, threads started
together, records compared without their journal-assigned position."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from sagactor.persistence.journal import Record

__all__ = ["WAIT", "Faultable", "Waiter", "run_threads", "same_records"]

WAIT = 30.0  # seconds; generous, so only a hang (never a slow machine) fails a test


@runtime_checkable
class Faultable(Protocol):
    """A journal whose commits can be made to fail (``MemoryJournal.fault``)."""

    fault: Callable[[Sequence[Record]], None] | None


class Waiter:
    """Collects ``on_done`` results; :meth:`wait` blocks until ``count`` have arrived."""

    def __init__(self, count: int) -> None:
        self.results: list[tuple[object, BaseException | None]] = []
        self._count = count
        self._lock = threading.Lock()
        self._done = threading.Event()
        if count == 0:
            self._done.set()

    def callback(self, tag: object) -> Callable[[BaseException | None], None]:
        def on_done(error: BaseException | None) -> None:
            with self._lock:
                self.results.append((tag, error))
                if len(self.results) == self._count:
                    self._done.set()

        return on_done

    def wait(self) -> list[tuple[object, BaseException | None]]:
        assert self._done.wait(WAIT), f"only {len(self.results)} of {self._count} callbacks ran"
        return self.results


def same_records(stored: Sequence[Record], written: Sequence[Record]) -> bool:
    """Equal apart from ``position``, which the journal assigns."""
    return list(written) == [
        Record(r.stream, r.seq, r.type, r.data, r.ts, r.cause, r.final) for r in stored
    ]


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` on ``count`` threads at once; re-raise the first failure."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            start.wait()
            target(i)
        except BaseException as error:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "threads still running"
    if errors:
        raise errors[0]
