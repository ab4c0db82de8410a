"""``python -m sagactor.testing.sim --seeds N``: per seed, the shop and a counting-ledger saga
under :func:`~sagactor.testing.simulate` (the durability settings taking turns by seed: full,
``synchronous="normal"``, ``durability="relaxed"``), and the ledgers in both modes under
:func:`~sagactor.testing.simulate_both_modes`; prints progress, ``seeds: N  violations: V``
and the failing seeds. Exit status 1 if any seed failed."""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback

import msgspec

from ..examples.shop import Order, conservation_problems, make_shop, order_saga
from ..names import Durability
from ..sagas.definition import Saga, Step
from ..sagas.steps import RetryPolicy
from .agreement import simulate_both_modes
from .ledger import CountingLedger
from .simdisk import Synchronous
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
        Step(
            s,
            participant=f"p{i}",
            action="do",
            timeout=60.0,
            schedule_timeout=60.0,
            retry=RetryPolicy(max_attempts=3, backoff=20.0) if s == "b" else RetryPolicy(),
        )
        for i, s in enumerate("abc")
    ],
    input_type=Job,
)
SETTINGS: list[tuple[Durability, Synchronous]] = [
    ("full", "full"),
    ("full", "normal"),
    ("relaxed", "full"),
]


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

    durability, synchronous = SETTINGS[seed % len(SETTINGS)]
    simulate(
        lambda: make_shop(STOCK, BALANCES),
        [order_saga],
        work,
        seed=seed,
        check=books,
        durability=durability,
        synchronous=synchronous,
    )


def _ledger_work(rng: random.Random) -> list[tuple[Saga, Job]]:
    return [(LEDGERS, Job(f"j{i}", rng.choice(["", "", "b", "c"]))) for i in range(3)]


def _ledgers_list() -> list[CountingLedger]:
    return [CountingLedger(f"p{i}") for i in range(3)]


def _ledgers(seed: int) -> None:
    durability, synchronous = SETTINGS[(seed + 1) % len(SETTINGS)]
    simulate(
        _ledgers_list,
        [LEDGERS],
        _ledger_work,
        seed=seed,
        durability=durability,
        synchronous=synchronous,
    )


def _both_modes(seed: int) -> None:
    simulate_both_modes(_ledgers_list, [LEDGERS], _ledger_work, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    args = parser.parse_args(argv)
    failing: list[str] = []
    started = time.monotonic()
    every = max(1, args.seeds // 20)
    for n, seed in enumerate(range(args.first, args.first + args.seeds), 1):
        for name, run in (("shop", _shop), ("ledgers", _ledgers), ("both modes", _both_modes)):
            try:
                run(seed)
            except SimulationError as error:
                failing.append(f"{name} seed={seed}")
                print(error, file=sys.stderr)
            except Exception:  # noqa: BLE001 - the simulation itself broke: a failing seed too
                failing.append(f"{name} seed={seed} (an error)")
                traceback.print_exc()
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
