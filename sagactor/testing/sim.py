"""``python -m sagactor.testing.sim --seeds N``: the shop and a counting-ledger saga under N
seeds of :func:`~sagactor.testing.simulate`; prints progress, ``seeds: N  violations: V`` and
the failing seeds. Exit status 1 if any seed failed."""

from __future__ import annotations

import argparse
import random
import sys
import time

import msgspec

from ..examples.shop import Order, conservation_problems, make_shop, order_saga
from ..sagas.definition import Saga, Step
from .ledger import CountingLedger
from .simulation import SimulationError, simulate

__all__ = ["Job", "main"]

STOCK = {"sku-1": 40, "sku-2": 40}
BALANCES = {"alice": 300, "bob": 3_000}


class Job(msgspec.Struct, frozen=True):
    id: str
    fail_at: str = ""


LEDGERS = Saga(
    "ledgers",
    [
        Step(s, participant=f"p{i}", action="do", timeout=60.0, schedule_timeout=60.0)
        for i, s in enumerate("abc")
    ],
    input_type=Job,
)


def _shop(seed: int) -> None:
    def work(rng: random.Random) -> list[tuple[Saga, Order]]:
        skus, people = sorted(STOCK), sorted(BALANCES)
        return [
            (
                order_saga,
                Order(
                    f"o{i}",
                    rng.choice(people),
                    rng.choice(skus),
                    rng.randint(1, 6),
                    rng.randint(1, 200),
                ),
            )
            for i in range(rng.randint(1, 5))
        ]

    def books(states: dict[str, object]) -> list[str]:
        return conservation_problems(states, STOCK, sum(BALANCES.values()))

    simulate(lambda: make_shop(STOCK, BALANCES), [order_saga], work, seed=seed, check=books)


def _ledgers(seed: int) -> None:
    def work(rng: random.Random) -> list[tuple[Saga, Job]]:
        return [(LEDGERS, Job(f"j{i}", rng.choice(["", "", "b", "c"]))) for i in range(3)]

    simulate(lambda: [CountingLedger(f"p{i}") for i in range(3)], [LEDGERS], work, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    args = parser.parse_args(argv)
    failing: list[str] = []
    started = time.monotonic()
    every = max(1, args.seeds // 20)
    for n, seed in enumerate(range(args.first, args.first + args.seeds), 1):
        for name, run in (("shop", _shop), ("ledgers", _ledgers)):
            try:
                run(seed)
            except SimulationError as error:
                failing.append(f"{name} seed={seed}")
                print(error, file=sys.stderr)
        if n % every == 0 or n == args.seeds:
            rate = n / max(time.monotonic() - started, 1e-9)
            print(
                f"\r[{n * 20 // args.seeds * '#':<20}] {n}/{args.seeds} seeds, {rate:.0f}/s",
                end="",
                flush=True,
            )
    print()
    print(f"seeds: {args.seeds}  violations: {len(failing)}")
    for failure in failing:
        print(f"  failing: {failure}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
