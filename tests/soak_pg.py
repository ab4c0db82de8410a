"""The multi-process kill soak on PostgreSQL: 3 worker processes share one database's
partitions (:class:`sagactor.Partitioned`); every few seconds one of them is killed with
SIGKILL and started again.

Each worker starts warehouse sagas (``tests.warehouse``) with ids it makes (so about two thirds
of its starts belong to partitions another worker holds, and go there through the database)
and prints each id once ``start_many`` returned: those are acknowledged. At the end the
parent kills the workers, joins alone (it then holds every partition), waits for every
acknowledged saga to end and checks each partition's books: stock and money balance, no
change applied twice, no saga's effects in two partitions, every saga ended as its input says.

``python -m tests.soak_pg --kills 100`` (``make soak-pg``) starts a throwaway cluster with
``scripts/pg-cluster`` unless ``--url`` names a database; it prints its progress.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sagactor as sa

from .warehouse import ITEMS, MODES, MONEY, NOWHERE, Courier, Ledger, Rounds, shipment, shipping
from .zygote import Forked, Zygote

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
LEASE = 1.5


class SlowCourier(Courier):
    """A courier that takes a moment: sagas are in flight when a worker is killed."""

    @sa.action("book")
    def book(self, ctx: sa.StepContext, shipment: Any) -> None:
        time.sleep(0.01)
        super().book(ctx, shipment)


def participants() -> list[sa.Participant[Any]]:
    from .warehouse import Store

    return [Store("warehouse", ITEMS, "items"), Store("till", MONEY, "price"), SlowCourier()]


def open_worker(url: str) -> sa.Partitioned:
    return sa.Partitioned.open(
        url, participants=participants, sagas=[shipping], partitions=PARTITIONS, lease=LEASE
    )


def worker(url: str, prefix: str) -> None:
    """Start sagas until killed, printing ``ack <id>`` once each start returned."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    shared = open_worker(url)
    print("ready", flush=True)
    number = 0
    while True:
        orders = []
        for _ in range(4):
            number += 1
            orders.append(shipment(number, prefix))
        runs = shared.start_many(
            shipping, orders, saga_ids=[o.id for o in orders], mode=MODES[number % 2]
        )
        sys.stdout.write("".join(f"ack {run.id}\n" for run in runs))
        sys.stdout.flush()
        time.sleep(0.05)


class Worker:
    """A worker process; the ids it acknowledged are collected by a reader thread. Forked
    from ``zygote`` if given (psycopg and sagactor imported once), else ``python -m``."""

    def __init__(
        self, url: str, prefix: str, acked: list[str], zygote: Zygote | None = None
    ) -> None:
        self.process: subprocess.Popen[str] | Forked
        if zygote is not None:
            self.process = zygote.start("worker", url, prefix)
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.soak_pg", "--worker", url, prefix],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        self.ready: queue.Queue[bool] = queue.Queue()
        self.stderr_tail: list[str] = []
        self.taken_over = 0  # partitions it found taken over (it was fenced) and replaced
        self._acked = acked
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._errors = threading.Thread(target=self._drain_stderr, daemon=True)
        self._errors.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("ack "):
                self._acked.append(line[4:].strip())
            elif line.strip() == "ready":
                self.ready.put(True)
        self.ready.put(False)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_tail = [*self.stderr_tail[-400:], line]
            if "was taken over by another process" in line:
                self.taken_over += 1

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(30)
        self._errors.join(30)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class Report:
    kills: int = 0
    acknowledged: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0


def soak(
    url: str,
    kills: int,
    *,
    seed: int = 0,
    every: tuple[float, float] = (1.5, 3.0),
    log: Any = print,
) -> Report:
    """Run 3 workers on ``url``, SIGKILL one ``kills`` times, then check everything."""
    rng = random.Random(seed)
    acked: list[str] = []
    started = time.monotonic()
    generations = Counter[str]()
    names = ("a", "b", "c")

    def launch(name: str) -> Worker:
        generations[name] += 1
        return Worker(url, f"{name}{generations[name]}-", acked, zygote)

    # A restart then costs no imports (2-3 s of each on a busy machine).
    zygote = Zygote("tests.soak_pg", preload=("sagactor.persistence.postgres",))
    workers = {name: launch(name) for name in names}
    report = Report()
    try:
        for name, process in workers.items():
            if not process.ready.get(timeout=60):
                report.violations.append(f"worker {name} did not start: {process.stderr_tail}")
                return report
        for kill in range(1, kills + 1):
            time.sleep(rng.uniform(*every))
            name = rng.choice(names)
            for other, process in workers.items():
                if process.process.poll() is not None:
                    report.violations.append(
                        f"worker {other} ended by itself: {''.join(process.stderr_tail)}"
                    )
                    return report
            workers[name].kill()
            report.kills = kill
            workers[name] = launch(name)
            if not workers[name].ready.get(timeout=60):
                report.violations.append(f"worker {name} did not restart")
                return report
            log(f"kill {kill}/{kills}: worker {name}; {len(acked)} sagas acknowledged so far")
        time.sleep(rng.uniform(*every))
    finally:
        for process in workers.values():
            process.kill()
        zygote.close()
    report.acknowledged = len(acked)
    log(f"checking {len(acked)} acknowledged sagas")
    report.violations += check(url, list(acked))
    report.seconds = time.monotonic() - started
    return report


def check(url: str, acknowledged: list[str], timeout: float = 120.0) -> list[str]:
    """Every broken guarantee, found by a process that holds every partition."""
    found: list[str] = []
    with open_worker(url) as alone:
        if not alone.wait_holding(PARTITIONS, LEASE * 4 + 30):
            return [f"the checker holds {alone.held} of {PARTITIONS} partitions"]
        deadline = time.monotonic() + timeout
        outcomes: dict[str, sa.Outcome] = {}
        for saga_id in acknowledged:
            try:
                outcomes[saga_id] = alone.result(saga_id, max(0.1, deadline - time.monotonic()))
            except sa.SagactorError as error:
                found.append(f"{saga_id}: {type(error).__name__}: {error}")
        keys: Counter[str] = Counter()
        ledgers: dict[tuple[str, int], Ledger] = {}
        for partition in range(PARTITIONS):
            for name in ("warehouse", "till"):
                ledgers[name, partition] = alone.state(name, partition)
            found += _books(alone, partition, ledgers, keys)
        found += [f"{key}: applied in {n} partitions" for key, n in keys.items() if n > 1]
        found += _outcomes(alone, outcomes, ledgers)
    return found


def _books(
    alone: sa.Partitioned,
    partition: int,
    ledgers: dict[tuple[str, int], Ledger],
    keys: Counter[str],
) -> list[str]:
    found = []
    for name, total in (("warehouse", ITEMS), ("till", MONEY)):
        ledger = ledgers[name, partition]
        if ledger.level + sum(ledger.held.values()) != total:
            found.append(f"p{partition} {name} does not balance: {ledger.level} + {ledger.held}")
        found += [f"p{partition} {name}: {k} applied {n} times" for k, n in ledger.applied.items()]
        keys.update(ledger.applied)
    rounds: Rounds = alone.state("courier", partition)
    found += [f"p{partition} courier: {k} booked {n} times" for k, n in rounds.booked.items()]
    keys.update(rounds.booked)
    return [problem for problem in found if not problem.endswith(" 1 times")]


def _outcomes(
    alone: sa.Partitioned,
    outcomes: dict[str, sa.Outcome],
    ledgers: dict[tuple[str, int], Ledger],
) -> list[str]:
    found = []
    for saga_id, outcome in outcomes.items():
        number = int(saga_id.rsplit("-", 1)[1])
        failing = shipment(number).to == NOWHERE
        expected = sa.SagaStatus.COMPENSATED if failing else sa.SagaStatus.COMPLETED
        if outcome.status is not expected:
            found.append(f"{saga_id} ended {outcome.status} ({outcome.reason}), not {expected}")
            continue
        partition = alone.partition_of(saga_id)
        for step, name in (("reserve", "warehouse"), ("charge", "till")):
            ledger = ledgers[name, partition]
            if (f"{saga_id}/{step}" in ledger.held) != (expected is sa.SagaStatus.COMPLETED):
                found.append(f"{saga_id} ended {outcome.status}, {name} holds {ledger.held}")
    return found


def _cluster() -> tuple[str, Path]:
    root = Path(tempfile.mkdtemp(prefix="sagactor-soak-pg-"))
    done = subprocess.run(
        [str(ROOT / "scripts" / "pg-cluster"), "start", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip(), root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url", help="a database to use (default: a throwaway cluster)")
    parser.add_argument("--worker", nargs=2, metavar=("URL", "PREFIX"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    root = None
    url = args.url
    if url is None:
        url, root = _cluster()
    try:
        report = soak(url, args.kills, seed=args.seed, log=lambda line: print(line, flush=True))
    finally:
        if root is not None:
            subprocess.run([str(ROOT / "scripts" / "pg-cluster"), "stop", str(root)], check=False)
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"{report.kills} kills, {report.acknowledged} sagas acknowledged, "
        f"{len(report.violations)} violations, {report.seconds:.0f} s"
    )
    for violation in report.violations[:50]:
        print("  ", violation)
    sys.exit(1 if report.violations or report.kills < args.kills else 0)


if __name__ == "__main__":
    main()
