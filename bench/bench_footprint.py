"""Memory and snapshots stay flat however many sagas have run; history costs one saga's records.

Runs ``--sagas`` 4-step sagas (100 in flight, 1 in 20 compensated) through participants whose
own state is bounded (counters), so anything that grows is the runtime's keeping. Every
``--every`` sagas it prints, per window: throughput, RSS growth per 100,000 sagas, snapshot
bytes written per saga, the largest latest snapshot, and the inbox records kept. Then the
latency of ``rt.history(id)`` and ``rt.status(id)`` with every saga in the journal.

In memory, the journal itself keeps every row (retention of journal rows is not built yet):
the RSS growth there is shown beside the bytes the ``MemoryJournal`` holds for those rows
(counted object by object; about 3% below what tracemalloc attributes to them), and the
difference is the runtime's own growth.

``python bench/bench_footprint.py [--sagas 200000] [--every 50000] [--only memory|durable]``
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

import sagactor as sa
from sagactor.persistence.journal import DoneCallback, Record, Snapshot
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal

IN_FLIGHT = 100
NAMES = ("ledger", "stock", "carrier", "mailer")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Job(msgspec.Struct, frozen=True):
    n: int
    fail: bool = False


class Receipt(msgspec.Struct, frozen=True):
    key: str
    n: int


class Bumped(msgspec.Struct, frozen=True):
    by: int


class Counts(msgspec.Struct):
    done: int = 0
    undone: int = 0


class Worker(sa.Participant[Counts]):
    """Bounded state; the last step refuses failing jobs, so the others compensate."""

    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> Counts:
        return Counts()

    @sa.action("work")
    def work(self, ctx: sa.StepContext, job: Job) -> Receipt:
        if job.fail and self.name == NAMES[-1]:
            raise sa.StepFailed("refused")
        ctx.record(Bumped(1))
        return Receipt(ctx.idempotency_key, job.n)

    @sa.compensation("work")
    def unwork(self, ctx: sa.StepContext, job: Job, done: Receipt) -> None:
        ctx.record(Bumped(-1))

    @sa.evolve
    def _bumped(self, state: Counts, change: Bumped) -> None:
        if change.by > 0:
            state.done += 1
        else:
            state.undone += 1


SAGA = sa.Saga("footprint", [sa.Step(f"{n}-step", participant=n, action="work") for n in NAMES])


class _Metered:
    """Counts the snapshot bytes a journal is asked to write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.snapshot_bytes = 0
        self._meter = threading.Lock()

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        if snapshot is not None:
            with self._meter:
                self.snapshot_bytes += len(snapshot.data)
        super().append(records, on_done, snapshot=snapshot)  # type: ignore[misc]


class MeteredMemory(_Metered, MemoryJournal):
    pass


class MeteredSqlite(_Metered, SqliteJournal):
    pass


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def _size(obj: object) -> int:
    """Bytes an object takes in the heap (pymalloc rounds small blocks up to 16 bytes)."""
    size = sys.getsizeof(obj)
    return (size + 15) // 16 * 16 if size <= 512 else size


def journal_bytes(journal: MemoryJournal, after: int) -> tuple[int, int]:
    """Bytes the in-memory journal keeps for its records after position ``after`` (records,
    payloads, timestamps, numbers, strings); and the last position."""
    records = journal.read_all(after=after)
    seen: set[int] = set()
    total = 0
    for r in records:
        total += _size(r) + _size(r.data) + _size(r.ts)
        total += sum(_size(number) for number in (r.seq, r.position) if number > 256)  # uncached
        for text in (r.stream, r.cause, r.type):
            if id(text) not in seen and not (text.isidentifier() or "." in text):
                seen.add(id(text))
                total += _size(text)
    return total, records[-1].position if records else after


def journal_containers(journal: MemoryJournal) -> int:
    """Bytes of the in-memory journal's lists and dicts (they grow with every record too)."""
    lists = [*journal._streams.values(), *journal._caused.values()]
    dicts = _size(journal._streams) + _size(journal._caused)
    dicts += sum(_size(saga_id) for saga_id in journal._caused)  # its own key strings
    return _size(journal._all) + dicts + sum(_size(records) for records in lists)


def run_window(rt: sa.Runtime, first: int, count: int) -> float:
    """Run ``count`` sagas with ``IN_FLIGHT`` outstanding; seconds taken."""
    window: deque[sa.SagaRun] = deque()
    began = time.perf_counter()
    for n in range(first, first + count):
        if len(window) >= IN_FLIGHT:
            window.popleft().result(120)
        window.append(rt.start(SAGA, Job(n, fail=n % 20 == 0), saga_id=f"j{n}"))
    while window:
        window.popleft().result(120)
    return time.perf_counter() - began


def measure(label: str, rt: sa.Runtime, journal: Any, total: int, every: int) -> None:
    print(f"\n{label}: {total:,} sagas, {IN_FLIGHT} in flight, a line per {every:,}")
    header = (
        f"{'sagas':>9}  {'sagas/s':>7}  {'RSS MB':>7}  {'RSS +MB/100k':>12}  "
        f"{'snap B/saga':>11}  {'max snap B':>10}  {'inbox':>5}"
    )
    memory = isinstance(journal, MemoryJournal)
    if memory:
        header += f"  {'journal +MB/100k':>16}  {'RSS-journal +MB/100k':>20}"
    print(header)
    run_window(rt, 0, min(every, 2000))  # warm-up, not counted in the first window
    done = min(every, 2000)
    position = rt.journal.read_all()[-1].position if memory else 0
    containers = journal_containers(journal) if memory else 0
    base, snap = rss(), journal.snapshot_bytes
    while done < total:
        count = min(every, total - done)
        seconds = run_window(rt, done, count)
        done += count
        time.sleep(0.2)  # let the last SagaEnded messages land
        now, footprint = rss(), rt.footprint()
        scale = 100_000 / count / 2**20
        line = (
            f"{done:>9,}  {count / seconds:>7,.0f}  {now / 2**20:>7.1f}  "
            f"{(now - base) * scale:>12.1f}  {(journal.snapshot_bytes - snap) / count:>11.1f}  "
            f"{max(footprint.snapshot_bytes.values()):>10,}  {sum(footprint.inbox.values()):>5}"
        )
        if memory:
            kept, position = journal_bytes(journal, position)
            grown = journal_containers(journal)
            kept, containers = kept + grown - containers, grown
            line += f"  {kept * scale:>16.1f}  {(now - base - kept) * scale:>20.1f}"
        print(line, flush=True)
        base, snap = now, journal.snapshot_bytes
    latency(rt, done)


def latency(rt: sa.Runtime, sagas: int) -> None:
    picks = random.Random(7).sample(range(sagas), 200)
    for name, read in (("history", rt.history), ("status", rt.status)):
        samples = []
        for n in picks:
            began = time.perf_counter()
            read(f"j{n}")
            samples.append(time.perf_counter() - began)
        q = statistics.quantiles(samples, n=100)
        print(
            f"rt.{name}(id) with {sagas:,} sagas in the journal: "
            f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sagas", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--only", choices=("memory", "durable"))
    args = parser.parse_args()
    workers: list[sa.Participant[Any]]
    if args.only != "durable":
        memory = MeteredMemory()
        workers = [Worker(n) for n in NAMES]
        with sa.Runtime(memory, participants=workers, sagas=[SAGA]) as rt:
            measure("in memory (MemoryJournal)", rt, memory, args.sagas, args.every)
    if args.only != "memory":
        with tempfile.TemporaryDirectory() as directory:
            durable = MeteredSqlite(Path(directory) / "footprint.db")
            workers = [Worker(n) for n in NAMES]
            with sa.Runtime(durable, participants=workers, sagas=[SAGA]) as rt:
                measure("durable (SQLite, synchronous=FULL)", rt, durable, args.sagas, args.every)
            size = (Path(directory) / "footprint.db").stat().st_size
            print(f"journal file: {size / 2**20:.0f} MB ({size / args.sagas:,.0f} B per saga)")


if __name__ == "__main__":
    main()
