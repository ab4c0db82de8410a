"""The simulation's own domains: the shop and a chain of counting ledgers (the test suite's
second domain), their workloads, and the durability settings taking turns by seed."""

from __future__ import annotations

import random
from typing import Any, Literal

import msgspec

import sagactor as sa
from sagactor.examples.shop import Order, conservation_problems, make_shop, order_saga
from sagactor.names import Durability
from sagactor.testing import CountingLedger, simulate

STOCK = {"sku-1": 40, "sku-2": 40}
BALANCES = {"alice": 300, "bob": 3_000}


class Job(msgspec.Struct, frozen=True):
    id: str
    fail_at: str = ""


# Each step times out (a minute to start, a minute to run); b retries twice after back-offs
# (timers that a recovery must re-arm).
LEDGER_SAGA = sa.Saga(
    "ledgers",
    [
        sa.Step(
            s,
            participant=f"p{i}",
            action="do",
            timeout=60.0,
            schedule_timeout=60.0,
            retry=sa.RetryPolicy(max_attempts=3, backoff=20.0) if s == "b" else sa.RetryPolicy(),
        )
        for i, s in enumerate("abc")
    ],
    input_type=Job,
)


def ledgers() -> list[CountingLedger]:
    return [CountingLedger(f"p{i}") for i in range(3)]


def ledger_work(rng: random.Random) -> list[tuple[sa.Saga, Job]]:
    return [(LEDGER_SAGA, Job(f"j{i}", rng.choice(["", "", "b", "c"]))) for i in range(3)]


def shop_work(rng: random.Random) -> list[tuple[sa.Saga, Order]]:
    return [
        (
            order_saga,
            Order(
                id=f"o{i}",
                customer=rng.choice(sorted(BALANCES)),
                sku=rng.choice(sorted(STOCK)),
                qty=rng.randint(1, 6),
                amount=rng.randint(1, 200),
            ),
        )
        for i in range(rng.randint(1, 5))
    ]


def shop_books(states: dict[str, object]) -> list[str]:
    return conservation_problems(states, STOCK, sum(BALANCES.values()))


SETTINGS: list[tuple[Durability, Literal["full", "normal"]]] = [
    ("full", "full"),
    ("full", "normal"),
    ("relaxed", "full"),
]
"""(durability, synchronous): what each promises is in sagactor.testing.siminvariants."""


def run_shop(seed: int, **options: Any) -> sa.testing.SimulationReport:
    return simulate(
        lambda: make_shop(STOCK, BALANCES),
        [order_saga],
        shop_work,
        seed=seed,
        check=shop_books,
        **options,
    )


def run_ledgers(seed: int, **options: Any) -> sa.testing.SimulationReport:
    return simulate(ledgers, [LEDGER_SAGA], ledger_work, seed=seed, **options)


def settings(seed: int) -> dict[str, Any]:
    durability, synchronous = SETTINGS[seed % len(SETTINGS)]
    return {"durability": durability, "synchronous": synchronous}
