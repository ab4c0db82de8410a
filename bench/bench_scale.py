"""The scaling curve: sagas/s with 1, 2 and 4 worker processes sharing one PostgreSQL database
(:class:`sagactor.Partitioned`, 8 partitions), beside SQLite (one process, the same workload),
in the same run.

Each worker holds its share of the partitions (8, 4 or 2), then for ``--seconds`` keeps
``--in-flight`` 3-step warehouse sagas going (starts without ids: in partitions it holds, no
forwarding), from 4 threads, batches of a quarter of that each; a saga counts once its outcome
is back. Every journal is durable (``synchronous="full"``; the PostgreSQL cluster with fsync
on). The cluster is a throwaway one (``scripts/pg-cluster``) unless ``--url`` names a server
(``postgresql://.../postgres``: a database per point is made in it).

    python bench/bench_scale.py [--seconds 10] [--in-flight 100] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sagactor as sa  # noqa: E402
from tests.warehouse import participants, shipment, shipping  # noqa: E402

PARTITIONS = 8
THREADS = 4


def drive(start: Callable[[list[Any]], list[sa.SagaRun]], seconds: float, in_flight: int) -> int:
    """Keep ``in_flight`` sagas going for ``seconds`` from :data:`THREADS` threads; ended sagas."""
    batch = max(1, in_flight // THREADS)
    deadline = time.monotonic() + seconds
    counts = [0] * THREADS

    def loop(index: int) -> None:
        number = index * 10_000_000
        while time.monotonic() < deadline:
            orders = []
            for _ in range(batch):
                number += 1
                orders.append(shipment(number * 4))  # a multiple of 4: never to atlantis
            for run in start(orders):
                run.result(60)
            counts[index] += batch

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def worker(url: str, workers: int, seconds: float, in_flight: int) -> None:
    """One worker process: join, hold its share, wait for ``go`` on stdin, drive, print."""
    with sa.Partitioned.open(
        url, participants=participants, sagas=[shipping], partitions=PARTITIONS, lease=5.0
    ) as shared:
        if not shared.wait_holding(PARTITIONS // workers, 120):
            print(f"unbalanced {shared.held}", flush=True)
            return
        print("ready", flush=True)
        sys.stdin.readline()
        cpu = time.process_time()
        ended = drive(lambda orders: shared.start_many(shipping, orders), seconds, in_flight)
        print(f"done {ended} {time.process_time() - cpu:.3f}", flush=True)


def pg_point(server: str, workers: int, seconds: float, in_flight: int) -> tuple[float, float]:
    """Sagas/s of ``workers`` processes on a new database of ``server``, and the workers'
    CPU milliseconds per saga."""
    import psycopg

    name = f"bench_scale_{workers}_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    url = urllib.parse.urlunsplit(urllib.parse.urlsplit(server)._replace(path=f"/{name}"))
    command = [sys.executable, __file__, "--worker", url, str(workers)]
    command += ["--seconds", str(seconds), "--in-flight", str(in_flight)]
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"a worker did not get its share: {line!r}")
        time.sleep(1.0)  # every give-back settled
        began = time.monotonic()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        total = 0
        cpu = 0.0
        for proc in procs:
            assert proc.stdout is not None
            _, ended, used = proc.stdout.readline().split()
            total += int(ended)
            cpu += float(used)
        elapsed = time.monotonic() - began
    finally:
        for proc in procs:
            proc.wait(60)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return total / max(elapsed, seconds), cpu * 1000 / max(total, 1)


def sqlite_point(seconds: float, in_flight: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scale.db"
        with sa.Runtime.open(path, participants=participants(), sagas=[shipping]) as rt:
            began, cpu = time.monotonic(), time.process_time()
            ended = drive(lambda orders: rt.start_many(shipping, orders), seconds, in_flight)
            used = time.process_time() - cpu
            return ended / (time.monotonic() - began), used * 1000 / max(ended, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--url", help="a PostgreSQL server (default: a throwaway cluster)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.seconds, args.in_flight)
        return
    root = None
    server = args.url
    script = str(ROOT / "scripts" / "pg-cluster")
    if server is None:
        root = tempfile.mkdtemp(prefix="sagactor-bench-scale-")
        server = subprocess.run(
            [script, "start", root, "--durable"], capture_output=True, text=True, check=True
        ).stdout.strip()
    try:
        print(
            f"bench_scale {datetime.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.1f}, {args.in_flight} in flight per process, "
            f"{args.seconds:.0f} s per point; CPU: the sagactor processes' own, per saga"
        )
        rate, cpu = sqlite_point(args.seconds, args.in_flight)
        print(f"{'SQLite, 1 process:':<28}{rate:7.0f} sagas/s  {cpu:5.2f} ms CPU", flush=True)
        for workers in args.workers:
            rate, cpu = pg_point(server, workers, args.seconds, args.in_flight)
            label = f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}:"
            print(f"{label:<28}{rate:7.0f} sagas/s  {cpu:5.2f} ms CPU", flush=True)
    finally:
        if root is not None:
            subprocess.run([script, "stop", root], check=False)
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
