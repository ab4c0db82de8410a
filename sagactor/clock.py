"""The runtime's clock and id source: the seams a simulation replaces to be deterministic.

Every due time and timestamp the runtime journals comes from :func:`now` (wall-clock seconds,
as ``time.time()``). :func:`use_clock` swaps the source for the whole process: the
deterministic simulation (:func:`sagactor.testing.simulate`) runs single-threaded on a virtual
clock that jumps to the next due timer when nothing else is ready, so an hour's step timeout
costs nothing. Only one virtual clock may be in use at a time. :func:`fresh_id` makes the
ids of sagas started without one; :func:`use_ids` makes them come from a seeded source.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator

__all__ = ["VirtualClock", "fresh_id", "now", "use_clock", "use_ids"]

_source: Callable[[], float] = time.time
# 64 random bits per id from a generator seeded by the OS (uuid4 costs a syscall and an object
# per saga); reseeded in a forked child, so two processes never share a sequence.
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
_ids: Callable[[], str] = lambda: f"{_random.getrandbits(64):016x}"  # noqa: E731 - see use_ids


def now() -> float:
    """Seconds since the epoch, from the clock in use (the wall clock unless simulating)."""
    return _source()


class VirtualClock:
    """A clock that moves only when told: :meth:`advance_to` (the simulation's idle loop)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time

    def advance_to(self, when: float) -> None:
        self.time = max(self.time, when)


@contextlib.contextmanager
def use_clock(clock: Callable[[], float]) -> Iterator[None]:
    """Make :func:`now` read ``clock`` inside the block (process-wide)."""
    global _source
    previous, _source = _source, clock
    try:
        yield
    finally:
        _source = previous


def fresh_id() -> str:
    """A new saga id (16 hex digits): random, or from the source :func:`use_ids` installed."""
    return _ids()


@contextlib.contextmanager
def use_ids(rng: random.Random) -> Iterator[None]:
    """Make :func:`fresh_id` draw from ``rng`` inside the block (process-wide)."""
    global _ids
    previous, _ids = _ids, lambda: f"{rng.getrandbits(64):016x}"
    try:
        yield
    finally:
        _ids = previous
