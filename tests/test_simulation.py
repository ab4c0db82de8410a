"""The deterministic simulation: the same seed gives the same journal byte for byte, other
seeds other orders, virtual time makes an hour's timeout free, and a bug re-introduced on
purpose is found within a few hundred seeds, with its seed in the error."""

from __future__ import annotations

import random
import time

import msgspec
import pytest

import sagactor as sa
from sagactor.actors.coordinator import Coordinator
from sagactor.examples.shop import Order, conservation_problems, make_shop, order_saga
from sagactor.sagas import state as saga_state
from sagactor.sagas.effects import Timer
from sagactor.sagas.machine import deadline_timer, pending
from sagactor.testing import (
    CountingLedger,
    Faults,
    SimulatedKinds,
    SimulationError,
    simulate,
    use_clock,
)

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


def run_shop(seed: int) -> sa.testing.SimulationReport:
    return simulate(
        lambda: make_shop(STOCK, BALANCES), [order_saga], shop_work, seed=seed, check=shop_books
    )


def test_the_same_seed_gives_byte_identical_journals() -> None:
    for seed in (3, 7, 11):
        first, second = run_shop(seed), run_shop(seed)
        assert first.events == second.events
        records = first.journal.read_all()
        assert len(records) > 10
        assert msgspec.json.encode(records) == msgspec.json.encode(second.journal.read_all())


def test_different_seeds_give_different_orders() -> None:
    # Faults off: what differs between seeds is the order the scheduler chose (and the ids).
    def order_of(seed: int) -> list[tuple[str, str]]:
        report = simulate(
            ledgers, [LEDGER_SAGA], ledger_work_fixed, seed=seed, faults=Faults.none()
        )
        return [(r.stream.split("/")[0], r.type) for r in report.journal.read_all()]

    orders = {tuple(order_of(seed)) for seed in range(8)}
    assert len(orders) > 1


def ledger_work_fixed(rng: random.Random) -> list[tuple[sa.Saga, Job]]:
    return [(LEDGER_SAGA, Job(f"j{i}")) for i in range(3)]


def test_virtual_time_makes_an_hour_timeout_free() -> None:
    kinds = SimulatedKinds(5)
    started = time.monotonic()
    with use_clock(kinds.clock):
        rt = sa.Runtime.in_memory(participants=ledgers(), sagas=[LEDGER_SAGA], kinds=kinds)
        rt.inject("p1", "do", sa.Fault("delay", seconds=3 * 3600.0))
        run = rt.start_nowait(LEDGER_SAGA, Job("late"))
        before = kinds.clock()
        kinds.run_until_quiet()
        status = rt.status(run.id).status
        waited = kinds.clock() - before
        rt.close()
    # Not started within 60 virtual seconds: retried, then compensated; the late copy still
    # arrives three virtual hours later (and is fenced), all within moments of real time.
    assert status is sa.SagaStatus.COMPENSATED
    assert waited >= 3 * 3600.0
    assert time.monotonic() - started < 5.0


def test_async_handlers_are_refused_under_simulation() -> None:
    class Async(sa.Participant[int]):
        name = "async"

        def initial_state(self) -> int:
            return 0

        @sa.action("go")
        async def go(self, ctx: sa.StepContext, value: object) -> None:
            return None

    with pytest.raises(sa.DefinitionError, match="simulation"):
        sa.Runtime.in_memory(participants=[Async()], kinds=SimulatedKinds(1))


def test_the_shop_and_the_ledgers_hold_over_many_seeds() -> None:
    for seed in range(200):
        run_shop(seed)
        simulate(ledgers, [LEDGER_SAGA], ledger_work, seed=seed)


def test_a_reintroduced_bug_is_found_and_its_seed_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The bug: a step that failed technically (timed out, errors exhausted) is not compensated,
    # only the steps that succeeded are: its late effect is left standing.
    right = saga_state.stack_for_compensation
    monkeypatch.setattr(
        saga_state,
        "stack_for_compensation",
        lambda state, in_doubt: right(state, in_doubt=None),
    )
    found: list[SimulationError] = []
    for seed in range(500):
        try:
            simulate(ledgers, [LEDGER_SAGA], ledger_work, seed=seed)
        except SimulationError as error:
            found.append(error)
            break
    assert found, "500 seeds did not find the re-introduced bug"
    assert f"seed={found[0].seed}" in str(found[0])
    assert "does not net zero" in str(found[0])
    with pytest.raises(SimulationError) as again:  # the failing seed replays
        simulate(ledgers, [LEDGER_SAGA], ledger_work, seed=found[0].seed)
    assert again.value.problems == found[0].problems


def test_a_timer_not_rearmed_after_recovery_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bug: a recovery resumes a saga's commands but not its timers (a retry's back-off, a
    # deadline, a sleep), so a saga that crashed while waiting for one waits for ever.
    def resume_without_timers(self: Coordinator, state: saga_state.SagaState) -> None:
        effects = [*pending(state), *deadline_timer(state)]
        self._perform(state, [e for e in effects if not isinstance(e, Timer)])

    monkeypatch.setattr(Coordinator, "_resume", resume_without_timers)
    found: list[SimulationError] = []
    for seed in range(500):
        try:
            simulate(ledgers, [LEDGER_SAGA], ledger_work, seed=seed)
        except SimulationError as error:
            found.append(error)
            break
    assert found, "500 seeds did not find the re-introduced bug"
    print(f"found: {found[0]}")
    assert "never ended" in str(found[0])
    with pytest.raises(SimulationError) as again:  # the failing seed replays
        simulate(ledgers, [LEDGER_SAGA], ledger_work, seed=found[0].seed)
    assert again.value.problems == found[0].problems
