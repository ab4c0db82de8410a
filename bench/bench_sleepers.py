"""100,000 sagas asleep at once: memory per sleeping saga, threads, and the time to reopen.

Each saga is ``Sleep("nap", until=...)`` then one step; every nap ends at the same wall-clock
time, far enough ahead that none wakes while measured. Three fresh processes (RSS figures are
only honest where nothing freed earlier can be reused):

1. ``asleep``: a durable SQLite runtime starts ``--sagas`` of them (``start_many`` in batches);
   RSS growth per saga once all are asleep, the start rate, the threads alive; then it is
   killed as ``kill -9`` would (``Runtime.crash``), so the reopen finds them all in flight;
2. ``reopen``: the time ``Runtime.open`` takes to recover them all (every timer re-armed from
   its journaled due time, none restarted), and RSS growth per saga after it;
3. ``wake`` (``--wake``): naps due a few seconds after the reopen: the time from the due time
   until the last saga completed.

``python bench/bench_sleepers.py [--sagas 100000] [--wake] [--json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sagactor as sa

PAGE = os.sysconf("SC_PAGE_SIZE")
BATCH = 10_000
ROOT = Path(__file__).resolve().parent.parent


class Rung(msgspec.Struct, frozen=True):
    n: int


class Rings(msgspec.Struct):
    count: int = 0


class Alarm(sa.Participant[Rings]):
    name = "alarm"
    inline = True  # its handler never blocks

    def initial_state(self) -> Rings:
        return Rings()

    @sa.action("ring")
    def ring(self, ctx: sa.StepContext, n: int) -> int:
        ctx.record(Rung(n))
        return n

    @sa.evolve
    def _rung(self, state: Rings, change: Rung) -> None:
        state.count += 1


def napping(until: float) -> sa.Saga:
    return sa.Saga(
        "napping",
        [sa.Sleep("nap", until=until), sa.Step("ring", "alarm", "ring", compensable=False)],
        input_type=int,
    )


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def asleep(path: str, sagas: int, until: float) -> dict[str, Any]:
    rt = sa.Runtime.open(path, participants=[Alarm()], sagas=[napping(until)])
    rt.start_many("napping", [-1 for _ in range(100)])  # warm-up: caches, pools
    time.sleep(0.2)
    before, threads_before = rss(), threading.active_count()
    began = time.perf_counter()
    last: list[sa.SagaRun] = []
    for first in range(0, sagas, BATCH):
        last = rt.start_many("napping", list(range(first, min(sagas, first + BATCH))))
    started = time.perf_counter() - began
    while not rt.status(last[-1].id).reason.startswith("sleeping"):
        if rt.status(last[-1].id).status.terminal or time.time() > until:
            raise RuntimeError("the naps ended before all sagas were asleep: give them longer")
        time.sleep(0.01)
    time.sleep(0.3)
    after = rss()
    figures = {
        "sagas": sagas,
        "start_per_s": sagas / started,
        "asleep_bytes_per_saga": (after - before) / sagas,
        "threads_added": threading.active_count() - threads_before,
    }
    rt.crash()  # as kill -9: everything stays in flight
    rt.close()
    return figures


def reopen(path: str, until: float) -> dict[str, Any]:
    before = rss()
    began = time.perf_counter()
    rt = sa.Runtime.open(path, participants=[Alarm()], sagas=[napping(until)])
    reopened = time.perf_counter() - began
    after = rss()
    in_flight = len(rt.saga_ids())
    rt.crash()
    rt.close()
    return {
        "reopen_s": reopened,
        "reopened_sagas": in_flight,
        "reopened_bytes_per_saga": (after - before) / max(1, in_flight),
    }


def wake(path: str, until: float) -> dict[str, Any]:
    rt = sa.Runtime.open(path, participants=[Alarm()], sagas=[napping(until)])
    try:
        ids = rt.saga_ids()
        for saga_id in ids:
            if not rt.run(saga_id).result(3600).ok:
                raise RuntimeError(f"a sleeper did not complete: {saga_id}")
        done = time.time()
        rings: Rings = rt.state("alarm")
        return {"woke": len(ids), "rang": rings.count, "all_done_after_due_s": done - until}
    finally:
        rt.close()


def _child(phase: str, path: str, sagas: int, until: float) -> dict[str, Any]:
    argv = ["--phase", phase, path, str(sagas), str(until)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_sleepers", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench_sleepers {phase} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=100_000)
    parser.add_argument("--wake", action="store_true", help="also wake them all, timed")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--phase", nargs=4, metavar=("PHASE", "DB", "SAGAS", "UNTIL"))
    args = parser.parse_args()
    if args.phase:
        phase, path, sagas, until = args.phase
        if phase == "asleep":
            figures = asleep(path, int(sagas), float(until))
        else:
            figures = (reopen if phase == "reopen" else wake)(path, float(until))
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "sleepers.db")
        # Far enough ahead for the starts and the reopen; with --wake, a few seconds after.
        until = time.time() + (3600.0 if not args.wake else 60.0 + args.sagas / 1_000)
        found = _child("asleep", path, args.sagas, until)
        found.update(_child("reopen", path, args.sagas, until))
        if args.wake:
            found.update(_child("wake", path, args.sagas, until))
        found["journal_mb"] = os.path.getsize(path) / 2**20
    if args.json:
        print(json.dumps(found))
        return
    print(f"sleeping sagas:                {found['sagas']:,}")
    print(f"started (durable, batches):    {found['start_per_s']:,.0f} sagas/s")
    print(f"memory per sleeping saga:      {found['asleep_bytes_per_saga'] / 1024:.2f} KiB (RSS)")
    print(f"threads added for them:        {found['threads_added']}")
    print(f"journal size:                  {found['journal_mb']:.1f} MB")
    print(f"reopen (recover all, re-arm):  {found['reopen_s']:.2f} s ({found['reopened_sagas']:,})")
    print(f"memory per saga after reopen:  {found['reopened_bytes_per_saga'] / 1024:.2f} KiB (RSS)")
    if args.wake:
        print(f"woke and completed:            {found['woke']:,} (rang {found['rang']:,})")
        print(f"last completed after due time: {found['all_done_after_due_s']:.2f} s")


if __name__ == "__main__":
    main()
