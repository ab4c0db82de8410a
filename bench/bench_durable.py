"""Durable throughput, latency and recovery, beside the in-memory runtime and raw sqlite3.

Prints, in one run: 4-step shop sagas/s at 1, 10 and 100 in flight, durable under FULL and
NORMAL, in memory, and in choreography beside orchestration; raw sqlite3 inserting the same
rows in batches (the floor under any SQLite journal); p50/p99 latency of one saga at a time;
recovery time for 10,000 in-flight sagas. ``python bench/bench_durable.py [--quick]``.
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import sagactor as sa
from sagactor.examples.shop import Order, make_shop, order_saga


def _order(i: int) -> Order:
    return Order(f"o{i}", f"c{i % 50}", "sku-1", 1, 10)


def throughput(
    rt: sa.Runtime, in_flight: int, total: int, mode: sa.Mode = "orchestration"
) -> float:
    """Sagas/s with ``in_flight`` callers, each starting a saga and waiting for its end."""
    counter = iter(range(total))
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            rt.start(order_saga, _order(i), mode=mode).result(timeout=60)

    threads = [threading.Thread(target=caller) for _ in range(in_flight)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return total / (time.perf_counter() - started)


def latencies(rt: sa.Runtime, count: int) -> tuple[float, float]:
    samples = []
    for i in range(count):
        began = time.perf_counter()
        rt.start(order_saga, _order(i)).result(timeout=60)
        samples.append(time.perf_counter() - began)
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49] * 1000, quantiles[98] * 1000


_RAW_INSERT = (
    "INSERT INTO events (stream, seq, type, data, ts, cause, final) VALUES (?,?,?,?,?,?,?)"
)


def raw_sqlite(
    rows: list[tuple[str, int, str, bytes, float, str, int]], synchronous: str, batch: int
) -> float:
    """Rows/s for plain executemany inserts of ``rows`` in transactions of ``batch`` rows."""
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(Path(directory) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(
            "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT, seq INTEGER, "
            "type TEXT, data BLOB, ts REAL, cause TEXT, final INTEGER, UNIQUE (stream, seq))"
        )
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_RAW_INSERT, rows[start : start + batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return len(rows) / elapsed


def recovery(sagas: int) -> tuple[float, float]:
    """Seconds to reopen a journal holding ``sagas`` in-flight sagas, and to finish them all."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "recover.db"
        rt = sa.Runtime.open(
            path, synchronous="normal", participants=make_shop(), sagas=[order_saga]
        )
        rt.inject("inventory", "reserve", sa.Fault("delay", seconds=3600))
        rt.start_many(order_saga, [_order(i) for i in range(sagas)])
        rt.crash()
        rt.close()
        started = time.perf_counter()
        rt = sa.Runtime.open(path, participants=make_shop(), sagas=[order_saga])
        reopened = time.perf_counter() - started
        for saga_id in rt.saga_ids():
            rt.run(saga_id).result(timeout=600)
        finished = time.perf_counter() - started
        rt.close()
    return reopened, finished


def _timed(label: str, measure: Callable[[], float]) -> float:
    value = measure()
    print(f"  {label:<46} {value:>10,.0f}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sagas, for a smoke run")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    total = {1: int(400 * scale), 10: int(2000 * scale), 100: int(4000 * scale)}
    results: dict[tuple[str, int], float] = {}
    print("4-step shop sagas/s (each caller starts a saga and waits for its end)")
    with sa.Runtime.in_memory(participants=make_shop(), sagas=[order_saga]) as rt:
        for n in (1, 10, 100):
            results[("memory", n)] = _timed(
                f"in-memory, {n} in flight", functools.partial(throughput, rt, n, total[n])
            )
    with tempfile.TemporaryDirectory() as directory:
        syncs: tuple[Literal["full", "normal"], ...] = ("full", "normal")
        for sync in syncs:
            path = Path(directory) / f"{sync}.db"
            with sa.Runtime.open(
                path, synchronous=sync, participants=make_shop(), sagas=[order_saga]
            ) as rt:
                for n in (1, 10, 100):
                    results[(sync, n)] = _timed(
                        f"durable {sync.upper()}, {n} in flight",
                        functools.partial(throughput, rt, n, total[n]),
                    )
                if sync == "full":
                    results[("choreo", 100)] = _timed(
                        "durable FULL, choreography, 100 in flight",
                        lambda: throughput(rt, 100, total[100], mode="choreography"),
                    )
                    rows = [
                        (r.stream, r.seq, r.type, r.data, r.ts, r.cause, int(r.final))
                        for r in rt.journal.read_all()
                    ]
                    sagas_done = len(rt.saga_ids())
    per_saga = len(rows) / sagas_done
    print(f"\njournal rows per saga: {per_saga:.1f}")
    raw_full = raw_sqlite(rows, "FULL", 200)
    raw_per_saga = raw_full / per_saga
    print(f"raw sqlite3, FULL, 200-row transactions: {raw_full:,.0f} rows/s", end="")
    print(f" = {raw_per_saga:,.0f} sagas/s")
    ratios = {
        "durable FULL / in-memory, 100 in flight": results[("full", 100)]
        / results[("memory", 100)],
        "durable NORMAL / in-memory, 100 in flight": results[("normal", 100)]
        / results[("memory", 100)],
        "durable FULL, 100 in flight / raw sqlite3": results[("full", 100)] / raw_per_saga,
        "choreography / orchestration, FULL, 100": results[("choreo", 100)]
        / results[("full", 100)],
    }
    print("\nratios")
    for label, ratio in ratios.items():
        print(f"  {label:<46} {ratio:.2f}")
    with (
        tempfile.TemporaryDirectory() as directory,
        sa.Runtime.open(
            Path(directory) / "lat.db", participants=make_shop(), sagas=[order_saga]
        ) as rt,
    ):
        p50, p99 = latencies(rt, int(300 * scale))
    print(f"\nlatency of one saga at a time, durable FULL: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    count = int(10_000 * scale)
    reopened, finished = recovery(count)
    print(f"recovery of {count:,} in-flight sagas: reopen {reopened:.2f} s,", end="")
    print(f" all finished after {finished:.2f} s")


if __name__ == "__main__":
    main()
