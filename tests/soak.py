"""Kill -9 soak: a child runs shop sagas, the parent SIGKILLs it at random moments, repeatedly.

The child opens the journal (recovering whatever the last kill left in flight), starts sagas
and prints each id once ``start`` returned. After every kill the parent checks the file with
``PRAGMA integrity_check``; at the end it opens the journal itself, waits for every
acknowledged saga to end, and checks that stock and money balance and no effect was applied
twice. ``python -m tests.soak --kills 1000`` (``make soak``) prints kills and violations.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sagactor as sa
from sagactor.examples.shop import Order, conservation_problems, make_shop, order_saga

from .zygote import Zygote

STOCK = {"sku-1": 10**6, "sku-2": 10**6}
BALANCES = {"alice": 10**9, "bob": 10**9, "carol": 10**9}
MONEY = sum(BALANCES.values())
PARTICIPANTS = ("inventory", "payment", "shipping", "notification")


def _open(db: Path, *, background: bool = False) -> sa.Runtime:
    return sa.Runtime.open(
        db,
        participants=make_shop(STOCK, BALANCES),
        sagas=[order_saga],
        snapshot_every=50,
        recover="background" if background else True,
    )


def child(db: Path, seed: int, *, background: bool = False) -> None:
    """Run sagas until killed, announcing each acknowledged id on stdout. ``background``:
    new sagas start while the last kill's sagas are still being recovered."""
    rng = random.Random(seed)
    rt = _open(db, background=background)
    rt.inject("payment", "charge", sa.Fault("fail", probability=0.15, seed=seed))
    rt.inject("shipping", "create", sa.Fault("error", probability=0.2, seed=seed + 1))
    rt.inject(
        "inventory", "reserve", sa.Fault("delay", probability=0.05, seed=seed + 2, seconds=0.01)
    )
    print("ready", flush=True)
    batch = 0
    while True:
        batch += 1
        modes: tuple[sa.Mode, ...] = ("orchestration", "choreography")
        orders = [
            Order(
                f"{seed}-{batch}-{i}",
                rng.choice(sorted(BALANCES)),
                rng.choice(sorted(STOCK)),
                rng.randint(1, 5),
                rng.randint(1, 500),
            )
            for i in range(rng.randint(1, 8))
        ]
        runs = rt.start_many(
            order_saga, orders, saga_ids=[o.id for o in orders], mode=rng.choice(modes)
        )
        sys.stdout.write("".join(f"ack {run.id}\n" for run in runs))
        sys.stdout.flush()


@dataclass
class SoakReport:
    kills: int = 0
    acknowledged: int = 0
    violations: list[str] = field(default_factory=list)


def soak(
    kills: int,
    *,
    seed: int = 0,
    db: Path | None = None,
    max_delay: float = 0.4,
    progress: bool = False,
    background: bool = False,
) -> SoakReport:
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="sagactor-soak-")) if db is None else db.parent
    db = db or workdir / "soak.db"
    report = SoakReport()
    acknowledged: list[str] = []
    with Zygote("tests.soak") as zygote:  # imports sagactor once, not once per kill
        for kill in range(kills):
            proc = zygote.start("forked_child", str(db), seed * 100_000 + kill, background)
            # Sometimes kill during recovery (before "ready"), mostly while sagas run.
            if rng.random() < 0.8:
                proc.stdout.readline()
            time.sleep(rng.uniform(0.0, max_delay))
            proc.send_signal(signal.SIGKILL)
            with proc.stdout, proc.stderr:
                output = proc.stdout.read()  # to EOF: it is dead then
            proc.wait(30)
            lines = output.split("\n")[:-1]  # the last piece may be a torn line: never acknowledged
            acknowledged += [line.split()[1] for line in lines if line.startswith("ack ")]
            report.kills += 1
            check = sqlite3.connect(db)
            try:
                verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                check.close()
            if verdict != "ok":
                report.violations.append(f"kill {kill}: integrity_check says {verdict}")
            if progress and (kill + 1) % 50 == 0:
                print(
                    f"  {kill + 1}/{kills} kills, {len(acknowledged)} acknowledged", file=sys.stderr
                )
    report.acknowledged = len(acknowledged)
    report.violations += _final_check(db, acknowledged)
    return report


def forked_child(db: str, seed: int, background: bool) -> None:
    """:func:`child`, in a process forked from a :class:`~tests.zygote.Zygote`."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # as before: its stderr is not read
    child(Path(db), seed, background=background)


def _final_check(db: Path, acknowledged: list[str]) -> list[str]:
    problems = []
    with _open(db) as rt:
        rt.clear_faults()
        for saga_id in acknowledged:
            try:
                outcome = rt.run(saga_id).result(timeout=30)
            except sa.SagactorError as error:
                problems.append(f"{saga_id}: {error}")
                continue
            if outcome.status not in (sa.SagaStatus.COMPLETED, sa.SagaStatus.COMPENSATED):
                problems.append(f"{saga_id} ended {outcome.status}: {outcome.reason}")
        states = {name: rt.state(name) for name in PARTICIPANTS}
        problems += conservation_problems(states, STOCK, MONEY)
        held = states["inventory"].reserved
        for saga_id in acknowledged:
            status = rt.status(saga_id).status
            if (f"{saga_id}/reserve_inventory" in held) != (status is sa.SagaStatus.COMPLETED):
                problems.append(f"{saga_id}: reservation held wrongly for a {status} saga")
        if rt.journal.open_streams("saga/"):
            problems.append(f"in flight after quiescence: {rt.journal.open_streams('saga/')[:5]}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--background", action="store_true", help='children open with recover="background"'
    )
    parser.add_argument("--child", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child), args.seed, background=args.background)
        return
    started = time.perf_counter()
    report = soak(args.kills, seed=args.seed, progress=True, background=args.background)
    elapsed = time.perf_counter() - started
    print(
        f"kills: {report.kills}  acknowledged sagas: {report.acknowledged}  "
        f"violations: {len(report.violations)}  ({elapsed:.1f}s)"
    )
    for violation in report.violations[:20]:
        print("  " + violation)
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
