"""DBOS Transact running the bench's 4-step saga: the external baseline of the durable rows.

The same workload as :mod:`bench.workload`: a workflow of four steps (reserve, charge, ship,
notify), each a small in-memory state change returning a receipt; DBOS checkpoints every
step's output in its system database, SQLite in WAL mode (set on the file before launch;
DBOS's own default ``synchronous`` is SQLite's, FULL). Callers are threads, each starting a
workflow and waiting for its result, like the sagactor rows.

Run in its own process (DBOS keeps global state and threads of its own): ``run.py`` starts
``python -m bench.bench_dbos --json`` with the interpreter named by ``BENCH_DBOS_PYTHON`` (or
its own), and prints "DBOS not installed" when that interpreter lacks ``dbos``. DBOS is a
bench-only extra: ``pip install 'sagactor[bench]'``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = ("reserve", "charge", "ship", "notify")


def _state_changes() -> tuple[Callable[[str, int], dict[str, Any]], dict[str, int]]:
    """A step body: count the step under a lock (the participants' bounded state)."""
    counts = dict.fromkeys(STEPS, 0)
    lock = threading.Lock()

    def change(step: str, n: int) -> dict[str, Any]:
        with lock:
            counts[step] += 1
        return {"key": f"{n}/{step}", "n": n}

    return change, counts


def measure(path: Path, totals: dict[int, int], latency_samples: int) -> dict[str, Any]:
    # Imported by name: a bench-only extra, absent from the venv that type-checks the project.
    DBOS: Any = importlib.import_module("dbos").DBOS  # noqa: N806 - DBOS's own spelling

    with sqlite3.connect(path) as conn:  # WAL is a property of the file: set it before DBOS
        conn.execute("PRAGMA journal_mode=WAL")
    change, counts = _state_changes()

    # Decorated by call, not by @: DBOS is typed Any here (see above), and mypy refuses untyped
    # decorators on typed functions.
    def reserve(n: int) -> dict[str, Any]:
        return change("reserve", n)

    def charge(n: int) -> dict[str, Any]:
        return change("charge", n)

    def ship(n: int) -> dict[str, Any]:
        return change("ship", n)

    def notify(n: int) -> dict[str, Any]:
        return change("notify", n)

    steps = [DBOS.step()(body) for body in (reserve, charge, ship, notify)]

    def order(n: int) -> list[dict[str, Any]]:
        return [step(n) for step in steps]

    workflow = DBOS.workflow()(order)

    DBOS(
        config={
            "name": "sagactor-bench",
            "system_database_url": f"sqlite:///{path}",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        made = iter(range(10**9))
        made_lock = threading.Lock()

        def one() -> None:
            with made_lock:
                n = next(made)
            workflow(n)

        for _ in range(20):  # warm-up
            one()
        rates: dict[str, float] = {}
        for in_flight, total in totals.items():
            rates[str(in_flight)] = _threads(one, in_flight, total)
        samples = []
        for _ in range(latency_samples):
            began = time.perf_counter()
            one()
            samples.append(time.perf_counter() - began)
        q = statistics.quantiles(samples, n=100)
        with sqlite3.connect(path) as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return {
            "sagas_per_s": rates,
            "p50_ms": q[49] * 1000,
            "p99_ms": q[98] * 1000,
            "journal_mode": mode,
            "steps_run": sum(counts.values()),
        }
    finally:
        DBOS.destroy()


def _threads(one: Callable[[], None], in_flight: int, total: int) -> float:
    """Sagas/s with ``in_flight`` caller threads sharing ``total`` workflows."""
    left = [total]
    lock = threading.Lock()

    def caller() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            one()

    threads = [threading.Thread(target=caller) for _ in range(in_flight)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return total / (time.perf_counter() - began)


def installed(python: str) -> bool:
    """Whether ``python`` can import dbos (checked in a child, without importing it here)."""
    import subprocess

    probe = subprocess.run(
        [python, "-c", "import dbos"], capture_output=True, check=False, timeout=120
    )
    return probe.returncode == 0


def run_child(quick: bool, timeout: float = 900) -> dict[str, Any] | None:
    """DBOS's figures from a child process, or None when DBOS is not installed there."""
    import subprocess

    python = os.environ.get("BENCH_DBOS_PYTHON", sys.executable)
    if not installed(python):
        return None
    root = Path(__file__).resolve().parent.parent
    argv = [python, "-m", "bench.bench_dbos", "--json", *(["--quick"] if quick else [])]
    done = subprocess.run(
        argv, cwd=root, capture_output=True, text=True, check=False, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"DBOS bench failed:\n{done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per figure")
    parser.add_argument("--json", action="store_true", help="one JSON line on stdout")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    totals = {1: 60, 10: 200, 100: 400} if args.quick else {1: 300, 10: 1000, 100: 2000}
    with tempfile.TemporaryDirectory() as directory:
        figures = measure(Path(directory) / "dbos.sqlite", totals, 50 if args.quick else 200)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
