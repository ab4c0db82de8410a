"""Memory per in-flight saga, RSS over many sagas, and recovery of many in-flight sagas.

- **Per in-flight saga**: RSS growth while ``n`` more durable sagas are held at their first
  step (its handler waits on a gate), each with a waiter registered, divided by ``n``: the
  marginal cost of one more. ``n`` sagas are held the same way first, so what is bounded
  whatever the number of sagas is not counted per saga: SQLite's page and statement caches
  (about 3 MB, filled by the first thousands of sagas: counted, they added ~0.3 KB per saga at
  10,000), the codec's cache of recent events, and the allocator's pools (freed temporaries of
  a start are reused by the next). The single-shot figure (growth of the first ``n``, caches
  included) goes to stderr beside it. The waiter is ``SagaRun.add_done_callback`` with one
  callback for all (what a driver passes), else what ``SagaRun.result`` registers (a
  ``Future`` from the runtime's outcome board), so no thread per waiter is counted.
- **RSS over many sagas**: durable sagas, 100 in flight, RSS after each window (after a
  ``gc.collect``); the figure is the growth per 100,000 sagas over the run's second half.
- **Recovery**: ``n`` sagas held in flight by a delay fault, the runtime crashed; then the time
  to reopen the journal, and until every saga has finished.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import sagactor as sa

from . import workload

__all__ = ["in_flight_bytes", "recovery", "rss", "rss_growth_per_100k"]

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def _ignore(_outcome: object) -> None:
    """The held sagas' done callback: one function for all, as a driver passes."""


def _wait_on(rt: sa.Runtime, run: sa.SagaRun) -> object:
    """Register a waiter for ``run`` without a thread; returns what keeps it alive."""
    add = getattr(run, "add_done_callback", None)
    if add is not None:
        add(_ignore)
        return None  # the runtime keeps the callback until the saga ends
    engine = getattr(rt, "engine", None)  # today's waiter, as SagaRun.result makes it
    board = engine.outcomes if engine is not None else rt._outcomes  # type: ignore[attr-defined]
    future: Future[Any] = board.wait(run.id)
    return future


def _hold(rt: sa.Runtime, first: int, n: int) -> tuple[list[sa.SagaRun], list[object]]:
    """Start ``n`` sagas (inputs from ``first``) that stop at the held first step, each with
    its waiter; return once the journal is idle (every start and first step written)."""
    runs = rt.start_many(workload.SAGA, [workload.Job(-i) for i in range(first, first + n)])
    waiters = [_wait_on(rt, run) for run in runs]
    time.sleep(0.5)  # let the commands reach the held participant's mailbox
    # Idle: no commit for 1 s. One quiet 0.2 s poll was not enough: a collection of the many
    # held objects can stop every thread that long, and a few hundred starts were still in
    # flight when the RSS was read (their temporaries counted, or not, at random).
    stats, deadline, quiet = rt.engine.journal.stats, time.monotonic() + 30, 0
    while time.monotonic() < deadline and quiet < 5:
        time.sleep(0.2)
        stats, before = rt.engine.journal.stats, stats
        quiet = quiet + 1 if stats == before else 0
    return runs, waiters


def in_flight_bytes(n: int) -> float:
    """RSS bytes per durable saga held in flight (with its waiter): the growth of holding
    ``n`` more while ``n`` are held already (see the module's doc)."""
    import sys

    gate = threading.Event()
    with tempfile.TemporaryDirectory() as directory:
        rt = sa.Runtime.open(
            Path(directory) / "inflight.db",
            participants=workload.participants(gate),
            sagas=[workload.SAGA],
        )
        try:
            gate.set()
            workload.window(rt, 100, 500)  # warm-up: caches, pools, first snapshots
            gate.clear()
            time.sleep(0.2)
            empty = rss()
            runs, waiters = _hold(rt, 1, n)
            before = rss()
            more, more_waiters = _hold(rt, n + 1, n)
            after = rss()
            single = (before - empty) / n
            print(f"first {n:,} (caches included): {single:.0f} B per saga", file=sys.stderr)
            gate.set()
            for run in [*runs, *more]:
                if not run.result(workload.WAIT).ok:
                    raise RuntimeError(f"a held saga did not complete: {run.id}")
            del waiters, more_waiters
        finally:
            gate.set()
            rt.close()
    return (after - before) / n


def rss_growth_per_100k(total: int, windows: int = 10) -> tuple[float, list[int]]:
    """MB of RSS growth per 100,000 durable sagas over the second half of ``total``; and the
    RSS after each window."""
    every = max(1, total // windows)
    samples: list[int] = []
    with tempfile.TemporaryDirectory() as directory:
        rt = workload.open_durable(Path(directory) / "rss.db")
        try:
            for _ in range(windows):
                workload.window(rt, 100, every)
                time.sleep(0.1)  # the last SagaEnded messages land
                samples.append(rss())
        finally:
            rt.close()
    half = windows // 2
    grown = samples[-1] - samples[half - 1]
    sagas = every * (windows - half)
    return grown / 2**20 * 100_000 / sagas, samples


def recovery(n: int) -> tuple[float, float, float]:
    """Seconds to reopen a journal holding ``n`` in-flight sagas with ``recover="background"``,
    until all of them have finished, and to reopen a copy of it resuming them before ``open``
    returns (the default)."""
    import shutil

    with tempfile.TemporaryDirectory() as directory:
        path, copy = Path(directory) / "recover.db", Path(directory) / "copy.db"
        rt = workload.open_durable(path, synchronous="normal")
        rt.inject(workload.NAMES[0], "work", sa.Fault("delay", seconds=3600))
        rt.start_many(workload.SAGA, [workload.Job(-i) for i in range(1, n + 1)])
        rt.crash()
        rt.close()
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                shutil.copy(f"{path}{suffix}", f"{copy}{suffix}")
        began = time.perf_counter()
        rt = workload.open_durable(copy)
        blocking = time.perf_counter() - began
        rt.close()
        began = time.perf_counter()
        rt = workload.open_durable(path, recover="background")
        reopened = time.perf_counter() - began
        try:
            for saga_id in rt.saga_ids():
                if not rt.run(saga_id).result(600).ok:
                    raise RuntimeError(f"a recovered saga did not complete: {saga_id}")
            finished = time.perf_counter() - began
        finally:
            rt.close()
    return reopened, finished, blocking


def in_child(what: str, size: int) -> Any:
    """Run one of this module's measures in a fresh process: RSS figures are only honest where
    nothing freed earlier can be reused (pymalloc keeps freed arenas)."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "bench.resources", what, str(size)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.resources {what} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    import json
    import logging
    import sys

    logging.getLogger("sagactor").setLevel(logging.ERROR)  # recovery crashes on purpose
    what, size = sys.argv[1], int(sys.argv[2])
    measures: dict[str, Callable[[], object]] = {
        "in-flight": lambda: in_flight_bytes(size),
        "rss": lambda: rss_growth_per_100k(size),
        "recovery": lambda: recovery(size),
    }
    print(json.dumps(measures[what]()))


if __name__ == "__main__":
    main()
