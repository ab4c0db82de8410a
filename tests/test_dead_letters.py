"""Dead letters (issue 14, item 5): a saga whose handling kills the process on every open is
parked after ``max_recovery_attempts`` recoveries that saw it make no progress.

Without it, a poison saga (its handler calls ``os._exit``, or raises ``SystemExit``) made
every ``Runtime.open`` of its journal die again. Now each recovery journals one
``RecoveryAttempted`` for it; once the limit is reached it is parked (status ``dead``, its
reason saying what was out), not retried automatically, listed by ``rt.dead_letters()``, and
``rt.retry_dead(id)`` after a code fix finishes it. The other sagas finish meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import msgspec
    import sagactor as sa

    db, phase = sys.argv[1], sys.argv[2]

    class Order(msgspec.Struct, frozen=True):
        n: int

    class Done(msgspec.Struct, frozen=True):
        key: str

    class Ledger(msgspec.Struct):
        done: list[str] = []

    class Worker(sa.Participant[Ledger]):
        def initial_state(self):
            return Ledger()

        @sa.action("work")
        def work(self, ctx, order: Order) -> int:
            if self.name == "poison" and phase != "fixed":
                time.sleep(0.3)  # the others go first; then the process dies, as at kill -9
                os._exit(3)
            if phase == "start":
                time.sleep(5)  # still in flight when the poison kills the process
            ctx.record(Done(ctx.saga_id))
            return order.n

        @sa.compensation("work")
        def undo(self, ctx, order: Order, done: int) -> None:
            pass

        @sa.evolve
        def _done(self, state, change: Done) -> None:
            state.done.append(change.key)

    class Shop(Worker):
        name = "shop"

    class Poison(Worker):
        name = "poison"

    GOOD = sa.Saga("good", [sa.Step("work", "shop", "work")], input_type=Order)
    BAD = sa.Saga("bad", [sa.Step("work", "poison", "work")], input_type=Order)
    rt = sa.Runtime.open(
        db, participants=[Shop(), Poison()], sagas=[GOOD, BAD], max_recovery_attempts=3
    )
    if phase == "start":
        for i in range(5):
            rt.start(GOOD, Order(i), saga_id=f"g{i}")
        rt.start(BAD, Order(99), saga_id="p")
        time.sleep(WAIT)
        sys.exit("the poison did not kill the process")
    if phase == "fixed":
        outcome = rt.retry_dead("p").result(WAIT)
        print(json.dumps({"p": outcome.status, "done": rt.state("poison").done}))
        rt.close()
        sys.exit(0)
    good = {f"g{i}": rt.run(f"g{i}").result(WAIT).status for i in range(5)}
    time.sleep(1.0)  # the poison's time to strike, if it was resumed
    dead = {k: v.reason for k, v in rt.dead_letters().items()}
    status = rt.status("p")
    print(json.dumps({"good": good, "dead": dead, "p": status.status, "reason": status.reason}))
    rt.close()
    """
).replace("WAIT", "10.0")


def child(script: Path, db: Path, phase: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), str(db), phase],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_poison_saga_that_kills_the_process_is_parked_and_retried_after_a_fix(
    tmp_path: Path,
) -> None:
    script, db = tmp_path / "child.py", tmp_path / "shop.db"
    script.write_text(CHILD)
    assert child(script, db, "start").returncode == 3, "the poison handler kills the process"

    crashes = 0
    while (run := child(script, db, "reopen")).returncode == 3:
        crashes += 1
        assert crashes <= 10, "never parked"
    assert run.returncode == 0, run.stderr
    assert crashes == 3  # max_recovery_attempts recoveries, then parked at the next open
    seen = json.loads(run.stdout)
    assert seen["good"] == {f"g{i}": "completed" for i in range(5)}
    assert seen["p"] == "dead"
    assert list(seen["dead"]) == ["p"]
    assert "3 recoveries in a row" in seen["reason"]
    assert "action 'work' attempt 1" in seen["reason"]

    again = child(script, db, "reopen")  # parked: not retried automatically
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["p"] == "dead"

    fixed = child(script, db, "fixed")
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads(fixed.stdout) == {"p": "completed", "done": ["p"]}


# -- in-process: a handler that raises SystemExit ends its runtime at every open ------------


class Order(msgspec.Struct, frozen=True):
    n: int


class Done(msgspec.Struct, frozen=True):
    key: str


class Ledger(msgspec.Struct):
    done: list[str] = []


class Gateway(sa.Participant[Ledger]):
    """Ends its runtime (``SystemExit``) until ``fixed``."""

    name = "gateway"

    def __init__(self, fixed: bool = False) -> None:
        self.fixed = fixed

    def initial_state(self) -> Ledger:
        return Ledger()

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, order: Order) -> int:
        if not self.fixed:
            raise SystemExit(f"gateway cannot take order {order.n}")
        ctx.record(Done(ctx.saga_id))
        return order.n

    @sa.compensation("charge")
    def refund(self, ctx: sa.StepContext, order: Order, done: int) -> None:
        pass

    @sa.evolve
    def _done(self, state: Ledger, change: Done) -> None:
        state.done.append(change.key)


PAY = sa.Saga("pay", [sa.Step("charge", "gateway", "charge")], input_type=Order)


def reopen(journal: MemoryJournal, **options: Any) -> sa.Runtime:
    fixed = options.pop("fixed", False)
    return sa.Runtime.in_memory(
        journal=journal, participants=[Gateway(fixed)], sagas=[PAY], **options
    )


def test_the_default_limit_parks_a_saga_after_five_recoveries_without_progress() -> None:
    journal = MemoryJournal()
    rt = reopen(journal)
    rt.start(PAY, Order(1), saga_id="poison")
    assert rt.wait_until_crashed(WAIT)
    rt.close()
    for _ in range(5):  # each recovery resends the charge, which ends the runtime again
        rt = reopen(journal)
        assert rt.wait_until_crashed(WAIT)
        rt.close()

    with reopen(journal) as rt:
        assert not rt.wait_until_crashed(0.5)
        outcome = rt.status("poison")
        assert outcome.status is sa.SagaStatus.DEAD
        assert outcome.status.terminal
        assert "5 recoveries in a row" in outcome.reason
        assert rt.run("poison").result(WAIT).status is sa.SagaStatus.DEAD  # no hang
        assert list(rt.dead_letters()) == ["poison"]
        types = [r.type for r in rt.journal.read("saga/poison")]
        assert types.count("RecoveryAttempted") == 5
        assert types[-1] == "SagaDead"

    with reopen(journal, fixed=True) as rt:
        assert rt.status("poison").status is sa.SagaStatus.DEAD  # fixed code: still parked
        assert rt.retry_dead("poison").result(WAIT).ok
        assert rt.state("gateway").done == ["poison"]
        assert rt.dead_letters() == {}
        rt.retry_dead("poison")  # not dead any more: left as it is
        with pytest.raises(sa.UnknownSaga):
            rt.retry_dead("nope")


def test_progress_between_recoveries_resets_the_count() -> None:
    journal = MemoryJournal()
    with reopen(journal, fixed=True) as rt:
        rt.start(PAY, Order(1), saga_id="slow", mode="orchestration").result(WAIT)
    # A saga journaled as in flight (StepStarted, no answer) at two crashes in a row...
    two = sa.Saga(
        "two",
        [sa.Step("a", "gateway", "charge"), sa.Step("b", "gateway", "charge")],
        input_type=Order,
    )
    rt = sa.Runtime.in_memory(journal=journal, participants=[Gateway()], sagas=[two, PAY])
    rt.start(two, Order(2), saga_id="s")
    assert rt.wait_until_crashed(WAIT)
    rt.close()
    for _ in range(2):
        rt = sa.Runtime.in_memory(
            journal=journal,
            participants=[Gateway()],
            sagas=[two, PAY],
            max_recovery_attempts=3,
        )
        assert rt.wait_until_crashed(WAIT)
        rt.close()
    # ... then step a succeeds (progress) and b kills the runtime again: counted from 1.
    rt = sa.Runtime.in_memory(
        journal=journal, participants=[_FixedOnce()], sagas=[two, PAY], max_recovery_attempts=3
    )
    assert rt.wait_until_crashed(WAIT)
    rt.close()
    types = [r.type for r in journal.read("saga/s")]
    assert types.count("RecoveryAttempted") == 3  # the third open let step a succeed
    assert types[-1] == "StepStarted"  # step b sent after a's success: the count is 0 again
    with sa.Runtime.in_memory(
        journal=journal, participants=[Gateway(True)], sagas=[two, PAY], max_recovery_attempts=3
    ) as rt:  # at 3 without the reset, it would be parked now
        assert rt.run("s").result(WAIT).ok


class _FixedOnce(Gateway):
    """Charges the first order it sees, then ends its runtime as before."""

    def __init__(self) -> None:
        super().__init__(fixed=True)

    @sa.action("charge")
    def charge(self, ctx: sa.StepContext, order: Order) -> int:
        if self.fixed:
            self.fixed = False
            ctx.record(Done(ctx.saga_id))
            return order.n
        raise SystemExit("broken again")


def test_no_limit_writes_nothing_at_recovery() -> None:
    journal = MemoryJournal()
    rt = reopen(journal)
    rt.start(PAY, Order(1), saga_id="p")
    assert rt.wait_until_crashed(WAIT)
    rt.close()
    rt = reopen(journal, max_recovery_attempts=None)
    assert rt.wait_until_crashed(WAIT)
    rt.close()
    assert "RecoveryAttempted" not in [r.type for r in journal.read("saga/p")]
    with pytest.raises(ValueError, match="max_recovery_attempts"):
        reopen(journal, max_recovery_attempts=0)
