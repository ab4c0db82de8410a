"""A late copy of an ended saga's command is still refused once inbox records are pruned
(guarantees 4 and 11 together).

A participant drops an ended saga's inbox records when its driver says ``SagaEnded``, which
comes after every command of that saga. The only copies that can come later are the ones the
participant scheduled for itself (a delay fault, a choreography retry), so it keeps the saga's
records, tombstone included, until the last of those has landed and been refused; after a
restart no such copy exists, and the records of ended sagas are dropped at once.

Each test lets a copy land after the saga's end and checks that nothing was applied (the
handler never even ran), and that the records went once it had landed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 30.0
LATE = 2.5  # seconds a delayed copy arrives after it was sent: well after its saga has ended
MODES: tuple[sa.Mode, ...] = ("orchestration", "choreography")


class Job(msgspec.Struct, frozen=True):
    n: int


class Locked(msgspec.Struct, frozen=True):
    key: str


class Unlocked(msgspec.Struct, frozen=True):
    key: str


class Locks(msgspec.Struct):
    locked: dict[str, int] = {}  # key -> times applied
    unlocked: dict[str, int] = {}


class Vault(sa.Participant[Locks]):
    """Counts its handler runs apart from its state: a refused copy must not even run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs: list[str] = []

    def initial_state(self) -> Locks:
        return Locks()

    @sa.action("lock")
    def lock(self, ctx: sa.StepContext, job: Job) -> str:
        self.runs.append(ctx.idempotency_key)
        ctx.record(Locked(ctx.idempotency_key))
        return ctx.idempotency_key

    @sa.compensation("lock")
    def unlock(self, ctx: sa.StepContext, job: Job, done: str) -> None:
        ctx.record(Unlocked(done))

    @sa.evolve
    def _locked(self, state: Locks, change: Locked) -> None:
        state.locked[change.key] = state.locked.get(change.key, 0) + 1

    @sa.evolve
    def _unlocked(self, state: Locks, change: Unlocked) -> None:
        state.unlocked[change.key] = state.unlocked.get(change.key, 0) + 1


ONE = sa.Saga("one", [sa.Step("lock", participant="safe", action="lock", schedule_timeout=0.3)])
TWO = sa.Saga(
    "two",
    [
        sa.Step("first", participant="vault", action="lock"),
        sa.Step("second", participant="safe", action="lock", schedule_timeout=0.3),
    ],
)
RETRIED = sa.Saga(
    "retried",
    [
        sa.Step(
            "lock",
            participant="safe",
            action="lock",
            schedule_timeout=0.3,
            retry=sa.RetryPolicy(max_attempts=2, backoff=LATE),
        )
    ],
)
SAGAS = [ONE, TWO, RETRIED]


class Journal:
    """One journal (a SQLite file, or a MemoryJournal) to open runtimes on, one after another."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path, self.memory = kind, path, MemoryJournal()
        self.opened: list[sa.Runtime] = []
        self.safe = Vault("safe")

    def open(self) -> sa.Runtime:
        self.safe = Vault("safe")  # kept, to read its handler runs
        parts: list[sa.Participant[Any]] = [Vault("vault"), self.safe]
        if self.kind == "sqlite":
            rt = sa.Runtime.open(self.path, participants=parts, sagas=SAGAS)
        else:
            rt = sa.Runtime.in_memory(journal=self.memory, participants=parts, sagas=SAGAS)
        self.opened.append(rt)
        return rt


@pytest.fixture(params=["sqlite", "memory"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    opener = Journal(request.param, tmp_path / "late.db")
    yield opener
    for rt in opener.opened:
        rt.close()


def settle(rt: sa.Runtime, sent: float, late: float = LATE) -> None:
    """Wait until the late copies sent at ``sent`` have landed, and no participant keeps an
    inbox record any more."""
    time.sleep(max(0.0, sent + late + 0.5 - time.monotonic()))
    deadline = time.monotonic() + WAIT
    while any(rt.footprint().inbox.values()):
        assert time.monotonic() < deadline, rt.footprint()
        time.sleep(0.02)


@pytest.mark.parametrize("mode", MODES)
def test_a_copy_delayed_past_the_end_applies_nothing(journal: Journal, mode: sa.Mode) -> None:
    with journal.open() as rt:
        rt.inject("safe", "lock", sa.Fault("delay", seconds=LATE))
        sent = time.monotonic()
        outcome = rt.start(ONE, Job(1), saga_id="late", mode=mode).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED  # timed out, in doubt, undone
        # Ended, but its tombstone stays while the delayed copy is due ...
        assert rt.footprint().inbox["safe"] == 1
        settle(rt, sent)  # ... until the copy has landed (and was refused)
        assert journal.safe.runs == []
        assert rt.state("safe") == Locks(locked={}, unlocked={})
        assert [e.type for e in rt.history("late") if e.source == "safe"] == ["sagactor.Handled"]


@pytest.mark.parametrize("mode", MODES)
def test_a_retry_due_after_the_end_applies_nothing(journal: Journal, mode: sa.Mode) -> None:
    # Retries are owned by the saga's driver in both modes: one due after the saga ended (here:
    # cancelled while the retry waited out its back-off) is dropped, and the tombstone left by
    # the in-doubt step's compensation refuses any copy still on its way.
    with journal.open() as rt:
        rt.inject("safe", "lock", sa.Fault("error", times=1))
        sent = time.monotonic()
        run = rt.start(RETRIED, Job(2), saga_id="retry", mode=mode)
        deadline = time.monotonic() + WAIT
        while not any(e.type == "StepRetrying" for e in rt.history("retry")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        rt.cancel("retry", "no longer wanted")
        outcome = run.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        settle(rt, sent)
        assert journal.safe.runs == []
        assert rt.state("safe") == Locks(locked={}, unlocked={})


def test_a_copy_due_at_a_crash_is_gone_after_the_restart(journal: Journal) -> None:
    rt = journal.open()
    rt.inject("safe", "lock", sa.Fault("delay", seconds=LATE))
    assert rt.start(ONE, Job(3), saga_id="crashed").result(WAIT).status.terminal
    rt.crash()  # the delayed copy dies with the process
    with journal.open() as again:
        assert again.footprint().inbox["safe"] == 0  # an ended saga's records go at startup
        assert again.recover() == []  # and nothing of it is sent again
        assert again.state("safe") == Locks(locked={}, unlocked={})


@pytest.mark.parametrize("mode", MODES)
def test_many_sagas_with_late_copies_apply_each_step_at_most_once(
    journal: Journal, mode: sa.Mode
) -> None:
    with journal.open() as rt:
        late = sa.Fault("delay", seconds=0.6, probability=0.5, seed=7)
        rt.inject("safe", "lock", late)
        runs = rt.start_many(TWO, [Job(n) for n in range(60)], mode=mode)
        outcomes = {run.id: run.result(WAIT) for run in runs}
        settle(rt, time.monotonic(), late.seconds)  # the last copies were sent by now
        vault, box = rt.state("vault"), rt.state("safe")
    statuses = {o.status for o in outcomes.values()}
    assert statuses == {sa.SagaStatus.COMPLETED, sa.SagaStatus.COMPENSATED}, statuses
    for saga_id, outcome in outcomes.items():
        first, second = f"{saga_id}/first", f"{saga_id}/second"
        assert vault.locked[first] == 1
        if outcome.ok:
            assert (box.locked.get(second), vault.unlocked.get(first)) == (1, None)
        else:  # the late copy of "second" was refused: nothing of it, and "first" undone once
            assert (box.locked.get(second), box.unlocked.get(second)) == (None, None)
            assert vault.unlocked[first] == 1
