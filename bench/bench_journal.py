"""The SQLite journal alone: appends/s and rows/s at group sizes 1, 10 and 100 beside raw
sqlite3 inserting the same rows in the same groups (same file format, same run), and reopen +
recovery scan of 10,000 in-flight sagas. ``python bench/bench_journal.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec

import sagactor as sa
from sagactor.examples.shop import Order, make_shop, order_saga
from sagactor.persistence.journal import Record
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.recovery import find_in_flight
from sagactor.persistence.sqlite import SqliteJournal

GROUPS = (1, 10, 100)
PAYLOAD = bytes(range(160))  # about what a step's inbox record weighs
STREAMS = 100


def _records(count: int) -> list[Record]:
    """One row per append, continuing ``STREAMS`` streams in turn (checked seqs)."""
    return [
        Record(f"participant/p{i % STREAMS}", i // STREAMS + 1, "Evt", PAYLOAD, 1.0, f"s{i}/x")
        for i in range(count)
    ]


def journal_rate(path: Path, records: list[Record], group: int) -> tuple[float, float]:
    """Appends/s when ``group`` appends are queued together, and batches per commit."""
    journal = SqliteJournal(path)
    done = threading.Semaphore(0)
    started = time.perf_counter()
    for start in range(0, len(records), group):
        chunk = records[start : start + group]
        for r in chunk:
            journal.append([r], lambda error: done.release())
        for _ in chunk:
            done.acquire()  # the group committed: queue the next one
    elapsed = time.perf_counter() - started
    stats = journal.stats
    journal.close()
    return len(records) / elapsed, stats.batches / max(stats.commits, 1)


def raw_rate(path: Path, records: list[Record], group: int) -> float:
    """Rows/s of plain ``executemany`` inserts, ``group`` rows per transaction."""
    SqliteJournal(path).close()  # the same tables and indexes
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    rows = [(r.stream, r.seq, r.type, r.data, r.ts, r.cause, 0) for r in records]
    sql = "INSERT INTO events (stream, seq, type, data, ts, cause, final) VALUES (?,?,?,?,?,?,?)"
    started = time.perf_counter()
    for start in range(0, len(rows), group):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[start : start + group])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def _template() -> list[Record]:
    """The saga stream of one real 4-step shop saga held at its third step."""
    memory = MemoryJournal()
    shop = make_shop({"sku-1": 10}, {"alice": 1_000})
    rt = sa.Runtime.in_memory(participants=shop, sagas=[order_saga], journal=memory)
    rt.inject("shipping", "create", sa.Fault("delay", seconds=60))
    rt.start(order_saga, Order("o", "alice", "sku-1", 1, 10), saga_id="o")
    deadline = time.monotonic() + 10
    while len(memory.read("saga/o")) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    rt.crash()
    rt.close()
    return memory.read("saga/o")


def _in_flight_journal(path: Path, sagas: int) -> None:
    """``sagas`` copies of that saga, each in its own stream."""
    template = _template()
    with SqliteJournal(path, synchronous="off", durable=False) as journal:
        for first in range(0, sagas, 1000):
            journal.append_and_wait(
                [
                    msgspec.structs.replace(r, stream=f"saga/o{i}", position=0)
                    for i in range(first, min(first + 1000, sagas))
                    for r in template
                ]
            )


def recovery_time(path: Path) -> tuple[float, float, float, int]:
    """Seconds to reopen the journal and find (and rebuild) every in-flight saga; then of the
    bulk scan alone, and of the same reads one stream at a time (the way before read_open)."""
    started = time.perf_counter()
    journal = SqliteJournal(path)
    found = find_in_flight(journal, {"order": order_saga})
    total = time.perf_counter() - started
    started = time.perf_counter()
    scanned = sum(len(records) for _, records in journal.read_open("saga/"))
    scan = time.perf_counter() - started
    started = time.perf_counter()
    one_by_one = sum(len(journal.read(s)) for s in journal.open_streams("saga/"))
    each = time.perf_counter() - started
    journal.close()
    assert not found.quarantined
    assert scanned == one_by_one
    return total, scan, each, len(found.states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer appends and sagas")
    parser.add_argument("--sagas", type=int, default=10_000, help="in-flight sagas to recover")
    args = parser.parse_args(sys.argv[1:])
    logging.getLogger("sagactor").setLevel(logging.ERROR)  # the template saga crashes on purpose
    counts = {1: 300, 10: 3_000, 100: 20_000} if args.quick else {1: 1_000, 10: 10_000, 100: 50_000}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("group  journal appends/s (=rows/s)  raw sqlite3 rows/s  ratio  batches/commit")
        for group in GROUPS:
            records = _records(counts[group])
            ours, per_commit = journal_rate(folder / f"j{group}.db", records, group)
            raw = raw_rate(folder / f"r{group}.db", records, group)
            print(f"{group:5}  {ours:27,.0f}  {raw:18,.0f}  {ours / raw:5.2f}  {per_commit:14.1f}")
        path = folder / "in-flight.db"
        sagas = 1_000 if args.quick else args.sagas
        _in_flight_journal(path, sagas)
        total, scan, each, found = recovery_time(path)
        print(
            f"reopen + find_in_flight of {found:,} in-flight sagas: {total:.3f} s "
            f"(target <= 0.2 s for 10,000); the bulk scan alone {scan:.3f} s, "
            f"one query per stream {each:.3f} s"
        )


if __name__ == "__main__":
    main()
