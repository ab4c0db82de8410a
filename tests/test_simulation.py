"""The deterministic simulation: the same seed gives the same journal byte for byte, other
seeds other orders, virtual time makes an hour's timeout free, the shop and the ledgers hold
over 500 seeds (and the ledgers agree across both modes), and two bugs of the project's history
re-introduced on purpose are each found within 500 seeds, with the seed in the error."""

from __future__ import annotations

import random
import time

import msgspec
import pytest

import sagactor as sa
from sagactor.actors.coordinator import Coordinator
from sagactor.sagas import state as saga_state
from sagactor.sagas.effects import Timer
from sagactor.sagas.machine import deadline_timer, pending
from sagactor.testing import (
    Faults,
    SimulatedKinds,
    SimulationError,
    simulate,
    simulate_both_modes,
    use_clock,
)

from .simdomain import LEDGER_SAGA, Job, ledger_work, ledgers, run_ledgers, run_shop, settings

CI_SEEDS = 500  # the figure: each re-introduced bug must be found within it


def test_the_same_seed_gives_byte_identical_journals() -> None:
    # Seeds whose faults include a power loss mid-group, a full disk, a crash while
    # recovering and message copies, under each durability setting.
    for seed in (2, 5, 7, 8, 11, 16):
        first, second = run_shop(seed, **settings(seed)), run_shop(seed, **settings(seed))
        assert first.events == second.events
        assert first.copies == second.copies
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
    seen: list[str] = []
    copies = lost = 0
    for seed in range(CI_SEEDS):
        for report in (run_shop(seed, **settings(seed)), run_ledgers(seed, **settings(seed + 1))):
            seen.extend(report.events)
            copies += report.copies
            lost += report.journal.lost
    # Every kind of fault was chosen by some seed (else the sweep proves less than it says).
    for fault in (
        "write error",
        "disk full",
        "power loss in the middle of group",
        "mid-recovery",
        "run 1: crash after scheduler step",
        "reopening refused",
        "delay",
        "fail",
        "error",
    ):
        assert any(fault in event for event in seen), fault
    assert copies > 100
    assert lost > 100


def test_both_modes_agree_over_many_seeds() -> None:
    for seed in range(CI_SEEDS):
        simulate_both_modes(ledgers, [LEDGER_SAGA], ledger_work, seed=seed)


def test_counted_faults_can_make_the_modes_differ() -> None:
    # Why the agreement takes Faults.agreeing(): a fault that fires once hits whichever
    # saga's command comes first, and each mode interleaves its own way. (That the comparison
    # catches a difference at all is what this shows.)
    counted = Faults(write_error=0.0, disk_full=0.0)
    found = None
    for seed in range(CI_SEEDS):
        try:
            simulate_both_modes(ledgers, [LEDGER_SAGA], ledger_work, seed=seed, faults=counted)
        except SimulationError as error:
            found = error
            break
    assert found is not None
    assert "differ" in str(found)


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
    for seed in range(CI_SEEDS):
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
    for seed in range(CI_SEEDS):
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
