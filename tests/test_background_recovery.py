"""``recover="background"``: ``Runtime.open`` returns at once and the in-flight sagas resume on
a thread. New sagas start meanwhile; acts on existing sagas and limited starts wait for the
recovery; each effect still happens once; closing or crashing mid-recovery loses nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 30.0
IN_FLIGHT = 300


class Deposit(msgspec.Struct, frozen=True):
    account: str
    amount: int


class Moved(msgspec.Struct, frozen=True):
    account: str
    by: int


class Book(msgspec.Struct):
    balances: dict[str, int] = msgspec.field(default_factory=dict)
    applied: int = 0
    undone: int = 0


class Vault(sa.Participant[Book]):
    """Counts every deposit it applies and undoes: "once" is checkable from its state."""

    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> Book:
        return Book()

    @sa.action("put")
    def put(self, ctx: sa.StepContext, deposit: Deposit) -> int:
        ctx.record(Moved(deposit.account, deposit.amount))
        return deposit.amount

    @sa.compensation("put")
    def take_back(self, ctx: sa.StepContext, deposit: Deposit, done: int) -> None:
        ctx.record(Moved(deposit.account, -done))

    @sa.evolve
    def _moved(self, state: Book, change: Moved) -> None:
        state.balances[change.account] = state.balances.get(change.account, 0) + change.by
        if change.by > 0:
            state.applied += 1
        else:
            state.undone += 1


TRANSFER = sa.Saga(
    "transfer",
    [
        sa.Step("debit_side", participant="vault_a", action="put"),
        sa.Step("credit_side", participant="vault_b", action="put"),
    ],
    input_type=Deposit,
)
APPROVED = sa.Saga(
    "approved-transfer",
    [
        sa.Step("debit_side", participant="vault_a", action="put"),
        sa.WaitFor("approval"),
        sa.Step("credit_side", participant="vault_b", action="put"),
    ],
    input_type=Deposit,
)
LIMITED = sa.Saga(
    "limited-transfer",
    [sa.Step("debit_side", participant="vault_a", action="put")],
    input_type=Deposit,
    max_in_flight=2,
)
SAGAS = [TRANSFER, APPROVED, LIMITED]


def _vaults() -> list[sa.Participant[Any]]:
    return [Vault("vault_a"), Vault("vault_b")]


def _crashed_with_sagas_in_flight(path: Path, count: int = IN_FLIGHT) -> list[str]:
    """A journal where ``count`` transfers wait in their second step (vault_b held), then
    the process dies."""
    rt = sa.Runtime.open(path, participants=_vaults(), sagas=SAGAS)
    rt.inject("vault_b", "put", sa.Fault("delay", seconds=3600))
    ids = [f"t{i}" for i in range(count)]
    rt.start_many(TRANSFER, [Deposit(f"acct{i % 7}", 1) for i in range(count)], saga_ids=ids)
    deadline = time.monotonic() + WAIT
    while _state(rt, "vault_a").applied < count and time.monotonic() < deadline:
        time.sleep(0.01)
    rt.crash()
    rt.close()
    return ids


def _state(rt: sa.Runtime, name: str) -> Book:
    state = rt.state(name)
    assert isinstance(state, Book)
    return state


def test_open_returns_before_recovery_and_every_saga_completes_once(tmp_path: Path) -> None:
    ids = _crashed_with_sagas_in_flight(tmp_path / "j.db")
    began = time.perf_counter()
    with sa.Runtime.open(
        tmp_path / "j.db", participants=_vaults(), sagas=SAGAS, recover="background"
    ) as rt:
        opened = time.perf_counter() - began
        # A new saga runs while the old ones are being recovered.
        fresh = rt.start(TRANSFER, Deposit("new", 5), saga_id="fresh")
        assert fresh.result(timeout=WAIT).ok
        resumed = rt.wait_recovered(timeout=WAIT)
        assert sorted(resumed) == sorted(ids)  # the new saga is not taken for a recovered one
        for saga_id in ids:
            assert rt.run(saga_id).result(timeout=WAIT).ok
        assert _state(rt, "vault_a").applied == IN_FLIGHT + 1  # the first step: never redone
        assert _state(rt, "vault_b").applied == IN_FLIGHT + 1
        assert _state(rt, "vault_b").balances["new"] == 5
        assert rt.counts() == {"completed": IN_FLIGHT + 1}
    assert opened < 5.0  # not a speed figure: open must not have waited for all resumes


def test_without_background_recovery_wait_recovered_answers_at_once(tmp_path: Path) -> None:
    ids = _crashed_with_sagas_in_flight(tmp_path / "j.db", count=5)
    with sa.Runtime.open(tmp_path / "j.db", participants=_vaults(), sagas=SAGAS) as rt:
        assert rt.wait_recovered(timeout=0) == []  # recovery ran before open returned
        assert all(rt.run(i).result(timeout=WAIT).ok for i in ids)


class _HeldRecovery:
    """A listener that holds the recovery's end until released: recovery stays pending."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, notice: Any) -> None:
        if isinstance(notice, sa.RecoveryNotice):
            self.entered.set()
            self.release.wait(WAIT)


def _open_held(path: Path) -> tuple[sa.Runtime, _HeldRecovery]:
    """The journal reopened in the background, its recovery held (pending) until released."""
    held = _HeldRecovery()
    rt = sa.Runtime.open(
        path, participants=_vaults(), sagas=SAGAS, recover="background", listeners=[held]
    )
    assert held.entered.wait(WAIT)
    return rt, held


def test_acts_on_existing_sagas_wait_for_the_recovery(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with sa.Runtime.open(path, participants=_vaults(), sagas=SAGAS) as rt:
        rt.start(APPROVED, Deposit("acct", 3), saga_id="a1")
        rt.start(APPROVED, Deposit("acct", 4), saga_id="a2")
        deadline = time.monotonic() + WAIT
        while _state(rt, "vault_a").applied < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        rt.crash()
    rt, held = _open_held(path)
    with rt:
        with pytest.raises(sa.RecoveryPending):
            rt.wait_recovered(timeout=0.05)
        assert rt.status("a1").status == "running"  # reads do not wait
        answers: list[Any] = []
        signaller = threading.Thread(target=lambda: answers.append(rt.signal("a1", "approval", 1)))
        signaller.start()
        signaller.join(0.3)
        assert signaller.is_alive()  # it waits for the recovery to hand the saga over
        held.release.set()
        signaller.join(WAIT)
        assert answers == [True]
        rt.cancel("a2", "changed my mind")
        assert rt.run("a1").result(timeout=WAIT).ok
        assert rt.run("a2").result(timeout=WAIT).status == "compensated"
        assert _state(rt, "vault_a").balances["acct"] == 3  # a2's debit undone, a1's kept


def test_a_limited_start_waits_for_recovered_sagas_to_hold_their_slots(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with sa.Runtime.open(path, participants=_vaults(), sagas=SAGAS) as rt:
        rt.inject("vault_a", "put", sa.Fault("delay", seconds=3600))
        for i in range(4):  # two run (held in their step), two queue
            rt.start(LIMITED, Deposit("acct", 1), saga_id=f"l{i}")
        rt.crash()
    rt, held = _open_held(path)
    with rt:
        late: list[sa.SagaRun] = []
        starter = threading.Thread(
            target=lambda: late.append(rt.start(LIMITED, Deposit("acct", 1), saga_id="l9"))
        )
        starter.start()
        starter.join(0.3)
        assert starter.is_alive()  # no slot taken ahead of the recovered sagas
        assert not late
        held.release.set()
        starter.join(WAIT)
        assert [run.result(timeout=WAIT).ok for run in late] == [True]
        assert all(rt.run(f"l{i}").result(timeout=WAIT).ok for i in range(4))
        assert _state(rt, "vault_a").applied == 5


def test_closing_or_crashing_mid_recovery_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    ids = _crashed_with_sagas_in_flight(path)
    rt = sa.Runtime.open(path, participants=_vaults(), sagas=SAGAS, recover="background")
    rt.crash()  # whatever the recovery had done so far
    with pytest.raises(sa.SagactorError):
        rt.wait_recovered(timeout=WAIT)
    rt.close()
    rt = sa.Runtime.open(path, participants=_vaults(), sagas=SAGAS, recover="background")
    rt.close()  # a close mid-recovery ends the recovery thread, never hangs
    with sa.Runtime.open(path, participants=_vaults(), sagas=SAGAS, recover="background") as rt:
        rt.wait_recovered(timeout=WAIT)
        assert all(rt.run(i).result(timeout=WAIT).ok for i in ids)
        assert _state(rt, "vault_b").applied == IN_FLIGHT
        assert _state(rt, "vault_a").undone == 0


def test_in_memory_journal_recovers_in_the_background() -> None:
    rt = sa.Runtime.in_memory(participants=_vaults(), sagas=SAGAS)
    journal = rt.journal
    assert isinstance(journal, MemoryJournal)
    rt.inject("vault_b", "put", sa.Fault("delay", seconds=3600))
    runs = rt.start_many(TRANSFER, [Deposit("m", 1) for _ in range(50)])
    ids = [run.id for run in runs]
    journal.flush()
    rt.crash()
    rt.close()
    with sa.Runtime(journal, participants=_vaults(), sagas=SAGAS, recover="background") as again:
        again.wait_recovered(timeout=WAIT)
        assert all(again.run(i).result(timeout=WAIT).ok for i in ids)
        assert _state(again, "vault_b").balances["m"] == 50


def test_a_start_reusing_the_id_of_a_saga_being_recovered_is_that_saga(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    ids = _crashed_with_sagas_in_flight(path, count=20)
    with sa.Runtime.open(path, participants=_vaults(), sagas=SAGAS, recover="background") as rt:
        again = rt.start(TRANSFER, Deposit("acct0", 1), saga_id=ids[0])  # same id and input
        with pytest.raises(sa.SagaIdConflict):
            rt.start(TRANSFER, Deposit("other", 9), saga_id=ids[1])
        assert again.result(timeout=WAIT).ok
        rt.wait_recovered(timeout=WAIT)
        assert all(rt.run(i).result(timeout=WAIT).ok for i in ids)
        assert _state(rt, "vault_b").applied == 20  # none started twice


@pytest.mark.anyio
async def test_await_recovered_from_an_event_loop(tmp_path: Path) -> None:
    ids = _crashed_with_sagas_in_flight(tmp_path / "j.db", count=30)
    with sa.Runtime.open(
        tmp_path / "j.db", participants=_vaults(), sagas=SAGAS, recover="background"
    ) as rt:
        assert sorted(await rt.await_recovered(WAIT)) == sorted(ids)
        for saga_id in ids:
            assert (await rt.run(saga_id).wait(WAIT)).ok


def test_a_simulation_recovers_before_open_returns() -> None:
    """Under the deterministic simulation one thread runs everything: "background" recovers
    at once, so a seed replays the same way."""
    from sagactor.testing import SimulatedKinds

    rt = sa.Runtime.in_memory(participants=_vaults(), sagas=SAGAS)
    journal = rt.journal
    rt.inject("vault_b", "put", sa.Fault("delay", seconds=3600))
    ids = [run.id for run in rt.start_many(TRANSFER, [Deposit("s", 1) for _ in range(5)])]
    deadline = time.monotonic() + WAIT
    while _state(rt, "vault_a").applied < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    rt.crash()
    rt.close()
    with sa.Runtime(
        journal, participants=_vaults(), sagas=SAGAS, recover="background", kinds=SimulatedKinds(3)
    ) as again:
        # Done before open returned (running the resumed sagas is the simulation's business).
        assert sorted(again.wait_recovered(timeout=0)) == sorted(ids)


@pytest.mark.parametrize("wrong", ["backgroud", "BACKGROUND", 1.5, None])
def test_a_wrong_recover_value_is_refused_and_keeps_nothing_open(
    tmp_path: Path, wrong: Any
) -> None:
    ids = _crashed_with_sagas_in_flight(tmp_path / "j.db", count=5)
    with pytest.raises(sa.DefinitionError, match="recover"):
        sa.Runtime.open(tmp_path / "j.db", participants=_vaults(), sagas=SAGAS, recover=wrong)
    # The file is not held open (no JournalLocked) and nothing was resumed by the refusal.
    with sa.Runtime.open(tmp_path / "j.db", participants=_vaults(), sagas=SAGAS) as rt:
        assert all(rt.run(i).result(timeout=WAIT).ok for i in ids)
        assert _state(rt, "vault_b").applied == 5
