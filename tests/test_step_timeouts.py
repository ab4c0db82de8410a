"""Guarantee 9: timeouts measure the step, not the queue.

A step's ``timeout`` bounds its handler's run from when the participant starts it; the wait in
the participant's mailbox counts only against an optional ``schedule_timeout``. A compensation
has its own ``compensation_timeout`` and its clock, too, starts with its handler, so it never
runs out behind a slow action. A timed-out attempt is retried under the step's ``RetryPolicy``
(the inbox answers a retry whose first attempt committed meanwhile); only when attempts run
out is the step in doubt and compensated. Both modes follow these rules alike, with the same
reasons, and a restart that takes longer than a timeout does not put a step whose answer was
saved in doubt.

The participants count what their handlers really did (event-sourced ``done``/``undone``) and
how often they ran; slowness comes from the saga's input, so it is the same after a restart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import CompensationFailed, StepRetrying, StepTimedOut
from sagactor.persistence.memory import MemoryJournal

MODES: tuple[sa.Mode, ...] = ("orchestration", "choreography")
KINDS = ("memory", "sqlite")
WAIT = 30.0


class Order(msgspec.Struct, frozen=True):
    id: str
    seconds: float = 0.0  # how long the call's handler takes ...
    slow_attempts: int = 0  # ... on its first `slow_attempts` attempts (0: on every attempt)
    raises: bool = False  # after that time it raises (nothing is recorded)
    undo_seconds: float = 0.0  # the same for the call's compensation
    undo_slow_attempts: int = 0
    undo_raises: bool = False
    refuse: bool = False  # the last step refuses the order, so the saga compensates


class Did(msgspec.Struct, frozen=True):
    key: str


class Undid(msgspec.Struct, frozen=True):
    key: str


class Ledger(msgspec.Struct):
    done: dict[str, int] = {}
    undone: dict[str, int] = {}


class Counting(sa.Participant[Ledger]):
    def initial_state(self) -> Ledger:
        return Ledger()

    @sa.evolve
    def _did(self, state: Ledger, change: Did) -> None:
        state.done[change.key] = state.done.get(change.key, 0) + 1

    @sa.evolve
    def _undid(self, state: Ledger, change: Undid) -> None:
        state.undone[change.key] = state.undone.get(change.key, 0) + 1


class Stock(Counting):
    name = "stock"

    @sa.action("reserve")
    def reserve(self, ctx: sa.StepContext, order: Order) -> str:
        ctx.record(Did(ctx.idempotency_key))
        return "reserved"

    @sa.compensation("reserve")
    def release(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        ctx.record(Undid(ctx.idempotency_key))

    @sa.action("confirm")
    def confirm(self, ctx: sa.StepContext, order: Order) -> str:
        if order.refuse:
            raise sa.StepFailed(f"order {order.id} refused")
        return "confirmed"


def _slow(seconds: float, slow_attempts: int, attempt: int) -> bool:
    return seconds > 0 and (slow_attempts == 0 or attempt <= slow_attempts)


class Service(Counting):
    """A remote call: slow, and perhaps failing, as the order says."""

    name = "service"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()  # handler runs per idempotency key
        self.undos: Counter[str] = Counter()

    @sa.action("call")
    def call(self, ctx: sa.StepContext, order: Order) -> str:
        self.calls[ctx.idempotency_key] += 1
        if _slow(order.seconds, order.slow_attempts, ctx.attempt):
            time.sleep(order.seconds)
            if order.raises:
                raise ConnectionError(f"no answer on attempt {ctx.attempt}")
        ctx.record(Did(ctx.idempotency_key))
        return "called"

    @sa.compensation("call")
    def revoke(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        self.undos[ctx.idempotency_key] += 1
        if _slow(order.undo_seconds, order.undo_slow_attempts, ctx.attempt):
            time.sleep(order.undo_seconds)
            if order.undo_raises:
                raise ConnectionError(f"no answer on attempt {ctx.attempt}")
        ctx.record(Undid(ctx.idempotency_key))


def saga(name: str, **call: object) -> sa.Saga:
    """reserve (stock), call (service, with ``call``'s settings), confirm (stock, last)."""
    return sa.Saga(
        name,
        [
            sa.Step("reserve", participant="stock", action="reserve"),
            sa.Step("call", participant="service", action="call", **call),  # type: ignore[arg-type]
            sa.Step("confirm", participant="stock", action="confirm", compensable=False),
        ],
        input_type=Order,
    )


@contextmanager
def runtime(kind: str, tmp_path: Path, service: Service | None = None) -> Iterator[sa.Runtime]:
    participants = [Stock(), service or Service()]
    if kind == "memory":
        with sa.Runtime.in_memory(participants=participants) as rt:
            yield rt
    else:
        with sa.Runtime.open(tmp_path / "journal.db", participants=participants) as rt:
            yield rt


def key(order: Order, step: str) -> str:
    return f"{order.id}/{step}"


def history_of(rt: sa.Runtime, saga_id: str, kind: str) -> list[object]:
    return [e.event for e in rt.history(saga_id) if e.type == kind]


# -- start-to-close: the wait in the mailbox does not count -----------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_many_sagas_at_once_wait_their_turn_without_timing_out(
    kind: str, mode: sa.Mode, tmp_path: Path
) -> None:
    """16 calls of 0.1 s each under timeout=0.5: the last waits 1.5 s in the mailbox."""
    definition = saga("crowd", timeout=0.5)
    orders = [Order(f"o{n}", seconds=0.1) for n in range(16)]
    service = Service()
    with runtime(kind, tmp_path, service) as rt:
        runs = rt.start_many(definition, orders, saga_ids=[o.id for o in orders], mode=mode)
        outcomes = [run.result(WAIT) for run in runs]
        assert [o.status for o in outcomes] == [sa.SagaStatus.COMPLETED] * len(orders)
        state = rt.state("service")
        assert state.done == {key(o, "call"): 1 for o in orders}
        assert state.undone == {}
        assert service.calls == {key(o, "call"): 1 for o in orders}  # no retry was needed
        for order in orders:
            assert history_of(rt, order.id, "StepRetrying") == []


@pytest.mark.parametrize("mode", MODES)
def test_compensations_queued_behind_slow_actions_do_not_time_out(mode: sa.Mode) -> None:
    """Six slow calls at once (0.5 s each, timeout 0.15 s, one attempt): each times out and is
    compensated. Each compensation (compensation_timeout 0.3 s) waits behind the remaining
    slow calls, up to 2.5 s; its clock starts when it runs, so none ends stuck."""
    definition = saga("slow-calls", timeout=0.15, compensation_timeout=0.3)
    orders = [Order(f"s{n}", seconds=0.5) for n in range(6)]
    service = Service()
    with sa.Runtime.in_memory(participants=[Stock(), service]) as rt:
        runs = rt.start_many(definition, orders, saga_ids=[o.id for o in orders], mode=mode)
        for run in runs:
            outcome = run.result(WAIT)
            assert outcome.status is sa.SagaStatus.COMPENSATED, outcome.reason
            assert outcome.reason == "step 'call' timed out (attempt 1)"
            assert outcome.compensated == ("call", "reserve")  # earlier steps undone too
        stock, calls = rt.state("stock"), rt.state("service")
        assert stock.done == stock.undone == {key(o, "reserve"): 1 for o in orders}
        # The slow calls did apply (after their timeout): each is undone exactly once.
        assert calls.done == calls.undone == {key(o, "call"): 1 for o in orders}
        assert service.undos == {key(o, "call"): 1 for o in orders}
        for order in orders:
            assert history_of(rt, order.id, "CompensationFailed") == []


# -- retries after a timeout, alike in both modes ---------------------------------------------


@dataclass
class Run:
    outcome: sa.Outcome
    state: Ledger  # the service's
    calls: dict[str, int]  # its action handler's runs per key
    retries: list[tuple[int, str]]  # (attempt, error) of each StepRetrying


def _run_in_both_modes(definition: sa.Saga, order: Order) -> dict[str, Run]:
    found: dict[str, Run] = {}
    for mode in MODES:
        service = Service()
        with sa.Runtime.in_memory(participants=[Stock(), service]) as rt:
            outcome = rt.start(definition, order, saga_id=order.id, mode=mode).result(WAIT)
            retries = [
                (e.attempt, e.error)
                for e in history_of(rt, order.id, "StepRetrying")
                if isinstance(e, StepRetrying)
            ]
            found[mode] = Run(outcome, rt.state("service"), dict(service.calls), retries)
    return found


def test_a_timed_out_attempt_is_retried_and_completes_in_both_modes() -> None:
    """The first attempt takes 0.4 s under timeout=0.1; retries back off 0.15 s (longer than
    the timeout). The retry queues behind the slow attempt and is answered from the inbox."""
    definition = saga("retried", timeout=0.1, retry=sa.RetryPolicy(max_attempts=3, backoff=0.15))
    order = Order("r1", seconds=0.4, slow_attempts=1)
    found = _run_in_both_modes(definition, order)
    for run in found.values():
        assert run.outcome.status is sa.SagaStatus.COMPLETED, run.outcome.reason
        assert run.outcome.results["call"] == "called"
        assert run.state.done == {key(order, "call"): 1}
        assert run.calls == {key(order, "call"): 1}  # the retry never ran the handler again
        assert run.retries[0] == (1, "timed out after 0.1s")
    assert found["orchestration"].outcome == found["choreography"].outcome


def test_attempts_that_all_time_out_leave_the_step_in_doubt_in_both_modes() -> None:
    """Every attempt takes 0.4 s and then fails: each has its own 0.1 s deadline, and the
    reason names the last attempt in both modes (choreography once said "attempt 1")."""
    definition = saga("in-doubt", timeout=0.1, retry=sa.RetryPolicy(max_attempts=3, backoff=0.15))
    order = Order("d1", seconds=0.4, raises=True)
    found = _run_in_both_modes(definition, order)
    for run in found.values():
        assert run.outcome.status is sa.SagaStatus.COMPENSATED
        assert run.outcome.reason == "step 'call' timed out (attempt 3)"
        assert run.outcome.compensated == ("call", "reserve")
        assert run.state.done == {}
        assert run.calls == {key(order, "call"): 3}
        assert run.retries == [(1, "timed out after 0.1s"), (2, "timed out after 0.1s")]
    assert found["orchestration"].outcome == found["choreography"].outcome


def test_retry_on_without_timeout_error_does_not_retry_a_timeout() -> None:
    policy = sa.RetryPolicy(max_attempts=3, backoff=0.01, retry_on=(ConnectionError,))
    definition = saga("no-retry", timeout=0.1, retry=policy)
    order = Order("n1", seconds=0.4, slow_attempts=1)
    for run in _run_in_both_modes(definition, order).values():
        assert run.outcome.status is sa.SagaStatus.COMPENSATED
        assert run.outcome.reason == "step 'call' timed out (attempt 1)"
        assert run.state.done == run.state.undone == {key(order, "call"): 1}  # late, undone
        assert run.calls == {key(order, "call"): 1}
        assert run.retries == []


# -- schedule-to-start --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_schedule_timeout_bounds_the_wait_before_the_handler_starts(mode: sa.Mode) -> None:
    """A 0.6 s call blocks the service; the next order waits behind it. Its schedule_timeout
    (0.2 s) runs out; a plain timeout of the same length would not (next test)."""
    definition = saga("scheduled", schedule_timeout=0.2)
    blocker, waiting = Order("b1", seconds=0.6), Order("w1")
    service = Service()
    with sa.Runtime.in_memory(participants=[Stock(), service]) as rt:
        first = rt.start(definition, blocker, saga_id=blocker.id, mode=mode)
        second = rt.start(definition, waiting, saga_id=waiting.id, mode=mode)
        assert first.result(WAIT).status is sa.SagaStatus.COMPLETED
        outcome = second.result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.reason == "step 'call' was not started in time (attempt 1)"
        assert outcome.compensated == ("call", "reserve")
        (timed_out,) = history_of(rt, waiting.id, "StepTimedOut")
        assert isinstance(timed_out, StepTimedOut)
        assert timed_out.limit == "schedule"
        # The queued command ran once its turn came, before its compensation: it is undone.
        state = rt.state("service")
        assert state.done == {key(blocker, "call"): 1, key(waiting, "call"): 1}
        assert state.undone == {key(waiting, "call"): 1}


@pytest.mark.parametrize("mode", MODES)
def test_the_same_wait_does_not_count_against_timeout(mode: sa.Mode) -> None:
    definition = saga("unscheduled", timeout=0.2)
    blocker, waiting = Order("b2", seconds=0.6), Order("w2")
    with sa.Runtime.in_memory(participants=[Stock(), Service()]) as rt:
        first = rt.start(definition, blocker, saga_id=blocker.id, mode=mode)
        second = rt.start(definition, waiting, saga_id=waiting.id, mode=mode)
        # The blocker itself runs 0.6 s under a 0.2 s timeout: in doubt, compensated.
        assert first.result(WAIT).status is sa.SagaStatus.COMPENSATED
        assert second.result(WAIT).status is sa.SagaStatus.COMPLETED
        assert rt.state("service").done == {key(blocker, "call"): 1, key(waiting, "call"): 1}


# -- compensation_timeout ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_compensation_is_retried_and_undoes_once(mode: sa.Mode) -> None:
    """The first compensation attempt takes 0.4 s under compensation_timeout=0.15: it times
    out, and the retry (queued behind it) is answered from the inbox."""
    definition = saga(
        "slow-undo",
        compensation_timeout=0.15,
        compensation_retry=sa.RetryPolicy(max_attempts=3, backoff=0.05),
    )
    order = Order("u1", undo_seconds=0.4, undo_slow_attempts=1, refuse=True)
    service = Service()
    with sa.Runtime.in_memory(participants=[Stock(), service]) as rt:
        outcome = rt.start(definition, order, saga_id=order.id, mode=mode).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.compensated == ("call", "reserve")
        state = rt.state("service")
        assert state.done == state.undone == {key(order, "call"): 1}
        assert service.undos == {key(order, "call"): 1}
        failures = [
            (f.attempt, f.error)
            for f in history_of(rt, order.id, "CompensationFailed")
            if isinstance(f, CompensationFailed)
        ]
        assert failures == [(1, "timed out after 0.15s")]


def test_a_compensation_that_always_times_out_is_stuck_alike_in_both_modes() -> None:
    definition = saga(
        "stuck-undo",
        compensation_timeout=0.15,
        compensation_retry=sa.RetryPolicy(max_attempts=3, backoff=0.05, max_backoff=0.1),
    )
    order = Order("u2", undo_seconds=0.5, undo_raises=True, refuse=True)
    outcomes = []
    for mode in MODES:
        with sa.Runtime.in_memory(participants=[Stock(), Service()]) as rt:
            outcome = rt.start(definition, order, saga_id=order.id, mode=mode).result(WAIT)
            assert outcome.status is sa.SagaStatus.STUCK
            assert outcome.reason == (
                "compensation of 'call' failed after 3 attempt(s): timed out after 0.15s"
            )
            assert rt.state("service").undone == {}
            outcomes.append(outcome)
    assert outcomes[0] == outcomes[1]


# -- a restart longer than the timeout ----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_answer_outlives_a_restart_longer_than_the_timeout(
    kind: str, mode: sa.Mode, tmp_path: Path
) -> None:
    """Die after the call's answer is saved but before it is sent, stay down longer than the
    step's timeout and schedule_timeout, reopen: the re-sent call is answered from the inbox
    and the saga completes (its timers start again with the recovery)."""
    definition = saga("restarted", timeout=0.3, schedule_timeout=0.3)
    order = Order("c1")
    memory = MemoryJournal()
    path = tmp_path / "journal.db"

    def open_runtime(service: Service) -> sa.Runtime:
        participants = [Stock(), service]
        if kind == "memory":
            return sa.Runtime.in_memory(
                journal=memory, participants=participants, sagas=[definition]
            )
        return sa.Runtime.open(path, participants=participants, sagas=[definition])

    before, after = Service(), Service()
    with open_runtime(before) as rt:
        rt.arm(sa.CrashPoint.BEFORE_REPLY, at_hit=2)  # 1: reserve's answer, 2: call's
        rt.start(definition, order, saga_id=order.id, mode=mode)
        assert rt.wait_until_crashed(WAIT)
    assert before.calls == {key(order, "call"): 1}
    time.sleep(0.5)  # longer than both time limits
    with open_runtime(after) as rt:
        outcome = rt.run(order.id).result(WAIT)
        assert outcome.status is sa.SagaStatus.COMPLETED, outcome.reason
        assert rt.state("service").done == {key(order, "call"): 1}
        assert rt.state("service").undone == {}
        assert after.calls == {}  # answered from the inbox: the handler did not run again
        assert history_of(rt, order.id, "StepTimedOut") == []
        assert history_of(rt, order.id, "StepRetrying") == []


# -- wrong settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["timeout", "schedule_timeout", "compensation_timeout"])
@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan"), "1", True])
def test_time_limits_must_be_positive_numbers(setting: str, value: object) -> None:
    with pytest.raises(sa.DefinitionError, match=f"{setting} must be a positive number"):
        saga("bad", **{setting: value})
