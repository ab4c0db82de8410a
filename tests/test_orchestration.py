"""Orchestration end to end: compensation order, retries, timeouts, tombstones, stuck sagas,
idempotent starts and cancel.

The participants here record every effect they apply and undo in their own (event-sourced)
state, and count every call of their action handler, so each test can check what really
happened, not only what the coordinator believes happened.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.examples.shop import Order, make_shop, order_saga
from sagactor.messages import Handled, HandledOutcome, SagaStatus

WAIT = 10.0
NAMES = ("alpha", "beta", "gamma", "delta")


# -- test participants ------------------------------------------------------------------------


class Job(msgspec.Struct, frozen=True):
    """What the recorder participants are asked to do, and how to misbehave."""

    fail_at: str = ""  # this participant's action raises StepFailed
    errors_at: str = ""  # this participant's action raises `error_type` ...
    errors: int = 0  # ... on its first `errors` attempts
    error_type: str = "RuntimeError"
    block_at: str = ""  # this participant's action waits on the saga's gate


class Did(msgspec.Struct, frozen=True):
    key: str


class Undid(msgspec.Struct, frozen=True):
    key: str


class Log(msgspec.Struct):
    held: list[str] = []
    did: list[str] = []
    undid: list[str] = []


ERRORS: dict[str, type[Exception]] = {
    "RuntimeError": RuntimeError,
    "ValueError": ValueError,
    "ConnectionError": ConnectionError,
}

_calls_lock = threading.Lock()
CALLS: Counter[str] = Counter()  # action handler calls per idempotency key (saga id/step)
GATES: dict[str, tuple[threading.Event, threading.Event]] = {}  # saga id -> (entered, release)


def calls(key: str) -> int:
    with _calls_lock:
        return CALLS[key]


class Recorder(sa.Participant[Log]):
    def initial_state(self) -> Log:
        return Log()

    @sa.action("do")
    def do(self, ctx: sa.StepContext, job: Job) -> str:
        with _calls_lock:
            CALLS[ctx.idempotency_key] += 1
        me = self.participant_name
        if job.block_at == me:
            entered, release = GATES[ctx.saga_id]
            entered.set()
            release.wait(WAIT)
        if job.errors_at == me and ctx.attempt <= job.errors:
            raise ERRORS[job.error_type](f"{me} flaked on attempt {ctx.attempt}")
        if job.fail_at == me:
            raise sa.StepFailed(f"{me} says no")
        ctx.record(Did(ctx.idempotency_key))
        return ctx.idempotency_key

    @sa.compensation("do")
    def undo(self, ctx: sa.StepContext, job: Job, done: str) -> None:
        ctx.record(Undid(done))

    @sa.evolve
    def _did(self, state: Log, change: Did) -> None:
        state.held.append(change.key)
        state.did.append(change.key)

    @sa.evolve
    def _undid(self, state: Log, change: Undid) -> None:
        state.held.remove(change.key)
        state.undid.append(change.key)


class Alpha(Recorder):
    name = "alpha"


class Beta(Recorder):
    name = "beta"


class Gamma(Recorder):
    name = "gamma"


class Delta(Recorder):
    name = "delta"


def step_of(participant: str) -> str:
    return f"step_{participant}"


def four_steps(name: str = "four", **beta: Any) -> sa.Saga:
    """alpha, beta, gamma, delta, one step each; ``beta`` overrides fields of beta's step."""
    steps = [sa.Step(step_of(p), participant=p, action="do") for p in NAMES]
    steps[1] = dataclasses.replace(steps[1], **beta)
    return sa.Saga(name, steps=steps, input_type=Job)


FOUR = four_steps()


@pytest.fixture
def rt() -> Iterator[sa.Runtime]:
    with sa.Runtime.in_memory(participants=[Alpha(), Beta(), Gamma(), Delta()]) as runtime:
        yield runtime


@pytest.fixture
def shop() -> Iterator[sa.Runtime]:
    with sa.Runtime.in_memory(participants=make_shop()) as runtime:
        yield runtime


def types(history: list[sa.HistoryEntry], *wanted: str) -> list[sa.HistoryEntry]:
    return [entry for entry in history if entry.type in wanted]


def handled(history: list[sa.HistoryEntry]) -> list[Handled]:
    return [e.event for e in history if isinstance(e.event, Handled)]


# -- compensation order -----------------------------------------------------------------------


def test_a_saga_without_failure_completes_every_step(rt: sa.Runtime) -> None:
    run = rt.start(FOUR, Job())
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPLETED
    assert outcome.compensated == ()
    assert outcome.results == {step_of(p): f"{run.id}/{step_of(p)}" for p in NAMES}
    for p in NAMES:
        assert rt.state(p) == Log(held=[f"{run.id}/{step_of(p)}"], did=[f"{run.id}/{step_of(p)}"])
    history = rt.history(run.id)
    assert [e.source for e in types(history, "Did")] == list(NAMES)
    assert types(history, "Undid", "StepCompensated", "CompensationStarted") == []
    assert history[-1].type == "SagaCompleted"


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_failure_at_step_k_compensates_steps_before_k_in_reverse(rt: sa.Runtime, k: int) -> None:
    failing = NAMES[k - 1]
    run = rt.start(FOUR, Job(fail_at=failing))
    outcome = run.result(WAIT)

    earlier = list(NAMES[: k - 1])
    expected = [step_of(p) for p in reversed(earlier)]
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.compensated == tuple(expected)
    assert step_of(failing) in outcome.reason
    assert f"{failing} says no" in outcome.reason

    # The participants' own state: each earlier step applied once and undone once; the failing
    # step and the later ones applied nothing.
    for p in NAMES:
        key = f"{run.id}/{step_of(p)}"
        log = rt.state(p)
        assert log.held == []
        if p in earlier:
            assert (log.did, log.undid) == ([key], [key])
        else:
            assert (log.did, log.undid) == ([], [])
    assert calls(f"{run.id}/{step_of(failing)}") == 1
    for p in NAMES[k:]:
        assert calls(f"{run.id}/{step_of(p)}") == 0

    # The history, in journal order: the coordinator's view and the participants' changes.
    history = rt.history(run.id)
    assert [e.event.step for e in types(history, "StepCompensated")] == expected
    assert [e.event.step for e in types(history, "CompensationStarted")] == expected
    assert [e.source for e in types(history, "Undid")] == list(reversed(earlier))
    assert [e.source for e in types(history, "Did")] == earlier
    (failed,) = types(history, "StepFailed")
    assert failed.event.step == step_of(failing)
    assert failed.event.business is True
    # every undo comes after the failure, which comes after every do
    undo_positions = [e.position for e in types(history, "Undid")]
    assert all(e.position < failed.position for e in types(history, "Did"))
    assert all(failed.position < position for position in undo_positions)
    # each compensation's participant change sits between its start and its acknowledgement
    for step in expected:
        started = next(
            e.position for e in types(history, "CompensationStarted") if e.event.step == step
        )
        acked = next(e.position for e in types(history, "StepCompensated") if e.event.step == step)
        (undo,) = [e.position for e in types(history, "Undid") if step_of(e.source) == step]
        assert started < undo < acked
    assert history[-1].type == "SagaCompensated"


def test_shop_shipping_failure_refunds_then_releases(shop: sa.Runtime) -> None:
    shop.inject("shipping", "create", sa.Fault("fail"))
    run = shop.start(order_saga, Order("o-1", "alice", "sku-1", 2, 500))
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.compensated == ("charge_payment", "reserve_inventory")
    history = shop.history(run.id)
    assert [e.type for e in history if e.source != "coordinator" and "Handled" not in e.type] == [
        "StockReserved",
        "Charged",
        "Refunded",
        "StockReleased",
    ]
    assert shop.state("inventory").reserved == {}
    assert shop.state("inventory").stock["sku-1"] == 1_000_000
    assert shop.state("payment").charges == {}
    assert shop.state("shipping").shipments == {}
    assert shop.state("notification").sent == {}


# -- retries ----------------------------------------------------------------------------------


def test_two_technical_errors_then_success_on_the_third_of_three_attempts(rt: sa.Runtime) -> None:
    saga = four_steps("retry3", retry=sa.RetryPolicy(max_attempts=3, backoff=0.001))
    run = rt.start(saga, Job(errors_at="beta", errors=2))
    outcome = run.result(WAIT)
    key = f"{run.id}/step_beta"
    assert outcome.status is SagaStatus.COMPLETED
    assert calls(key) == 3
    assert rt.state("beta").did == [key]  # the failed attempts applied nothing
    history = rt.history(run.id)
    retrying = types(history, "StepRetrying")
    assert [(e.event.step, e.event.attempt) for e in retrying] == [
        ("step_beta", 1),
        ("step_beta", 2),
    ]
    assert all("RuntimeError: beta flaked" in e.event.error for e in retrying)
    beta_starts = [
        e.event.attempt for e in types(history, "StepStarted") if e.event.step == "step_beta"
    ]
    assert beta_starts == [1, 2, 3]


def test_two_technical_errors_with_two_attempts_compensate(rt: sa.Runtime) -> None:
    saga = four_steps("retry2", retry=sa.RetryPolicy(max_attempts=2, backoff=0.001))
    run = rt.start(saga, Job(errors_at="beta", errors=2))
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    # A technically failed step is in doubt (a copy of its command might still apply), so it
    # is compensated too: its participant had applied nothing and leaves a tombstone.
    assert outcome.compensated == ("step_beta", "step_alpha")
    assert "RuntimeError" in outcome.reason
    assert calls(f"{run.id}/step_beta") == 2
    assert rt.state("beta") == Log()
    assert rt.state("alpha").held == []
    history = rt.history(run.id)
    (failed,) = types(history, "StepFailed")
    assert (failed.event.step, failed.event.attempt, failed.event.business) == (
        "step_beta",
        2,
        False,
    )
    beta = [h for h in handled(history) if h.step == "step_beta"]
    assert [(h.kind, h.outcome) for h in beta] == [("compensation", HandledOutcome.TOMBSTONE)]


def test_a_business_failure_is_never_retried(rt: sa.Runtime) -> None:
    saga = four_steps("retry-business", retry=sa.RetryPolicy(max_attempts=5, backoff=0.001))
    run = rt.start(saga, Job(fail_at="beta"))
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.compensated == ("step_alpha",)  # the refusal is recorded: not in doubt
    assert calls(f"{run.id}/step_beta") == 1
    assert types(rt.history(run.id), "StepRetrying") == []


@pytest.mark.parametrize(
    ("error_type", "status", "attempts"),
    [
        ("ValueError", SagaStatus.COMPENSATED, 1),  # not listed: fails at once
        ("ConnectionError", SagaStatus.COMPLETED, 3),  # listed: retried
    ],
)
def test_retry_on_narrows_which_errors_retry(
    rt: sa.Runtime, error_type: str, status: SagaStatus, attempts: int
) -> None:
    policy = sa.RetryPolicy(max_attempts=3, backoff=0.001, retry_on=(ConnectionError,))
    saga = four_steps("retry-on", retry=policy)
    run = rt.start(saga, Job(errors_at="beta", errors=2, error_type=error_type))
    outcome = run.result(WAIT)
    assert outcome.status is status
    assert calls(f"{run.id}/step_beta") == attempts
    assert len(types(rt.history(run.id), "StepRetrying")) == attempts - 1
    if status is SagaStatus.COMPENSATED:
        assert error_type in outcome.reason


@pytest.mark.parametrize(("times", "status"), [(2, "completed"), (3, "compensated")])
def test_injected_technical_errors_retry_in_the_shop(
    shop: sa.Runtime, times: int, status: str
) -> None:
    fault = sa.Fault("error", times=times)
    shop.inject("payment", "charge", fault)
    run = shop.start(order_saga, Order("o-2", "bob", "sku-1", 1, 100))
    outcome = run.result(WAIT)
    assert outcome.status == status
    assert fault.fired == min(times, 3)  # order_saga allows 3 attempts of charge_payment
    history = shop.history(run.id)
    assert len(types(history, "StepRetrying")) == 2
    charges = shop.state("payment").charges
    if status == "completed":
        assert list(charges) == [f"{run.id}/charge_payment"]
        assert shop.state("payment").applied == {f"{run.id}/charge_payment": 1}
    else:
        assert charges == {}
        assert shop.state("inventory").reserved == {}


# -- timeouts and tombstones ------------------------------------------------------------------


def test_a_timed_out_step_is_compensated_and_its_late_action_refused(rt: sa.Runtime) -> None:
    # A delayed command waits before its handler starts: its schedule_timeout runs out (a
    # `timeout` would not: it counts from the handler's start, see test_step_timeouts.py).
    delay = 0.5
    saga = four_steps("timeout", schedule_timeout=0.15)
    rt.inject("beta", "do", sa.Fault("delay", seconds=delay, times=1))
    started = time.monotonic()
    run = rt.start(saga, Job())
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.compensated == ("step_beta", "step_alpha")  # the in-doubt step first
    assert outcome.reason == "step 'step_beta' was not started in time (attempt 1)"

    history = rt.history(run.id)
    (timed_out,) = types(history, "StepTimedOut")
    assert timed_out.event.step == "step_beta"
    beta = [h for h in handled(history) if h.step == "step_beta"]
    assert [(h.kind, h.outcome) for h in beta] == [("compensation", HandledOutcome.TOMBSTONE)]

    # Let the delayed action reach beta: the tombstone must refuse it.
    time.sleep(max(0.0, started + delay + 0.3 - time.monotonic()))
    log = rt.state("beta")
    assert log == Log()
    assert calls(f"{run.id}/step_beta") == 0  # the handler never ran
    assert [(h.kind, h.outcome) for h in handled(rt.history(run.id)) if h.step == "step_beta"] == [
        ("compensation", HandledOutcome.TOMBSTONE)
    ]
    assert rt.state("alpha").held == []
    assert rt.status(run.id).status is SagaStatus.COMPENSATED


# -- stuck and resume -------------------------------------------------------------------------


def test_a_failing_compensation_leaves_the_saga_stuck_until_resumed(rt: sa.Runtime) -> None:
    rt.inject("alpha", "do", sa.Fault("error"), compensation=True)
    run = rt.start(FOUR, Job(fail_at="gamma"))
    outcome = run.result(WAIT)
    key = f"{run.id}/step_alpha"
    assert outcome.status is SagaStatus.STUCK
    assert "'step_alpha'" in outcome.reason
    assert "injected error" in outcome.reason
    assert outcome.compensated == ("step_beta",)
    assert rt.state("alpha").held == [key]  # not undone: it is what an operator must fix
    assert rt.status(run.id).status is SagaStatus.STUCK
    history = rt.history(run.id)
    failures = types(history, "CompensationFailed")
    assert [(e.event.step, e.event.attempt) for e in failures] == [
        ("step_alpha", 1),
        ("step_alpha", 2),
        ("step_alpha", 3),
    ]
    assert failures[-1].event.due == 0.0
    assert history[-1].type == "SagaStuck"

    rt.clear_faults()
    rt.resume(run.id)
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.compensated == ("step_beta", "step_alpha")
    assert rt.state("alpha") == Log(held=[], did=[key], undid=[key])
    history = rt.history(run.id)
    assert [e.type for e in history if e.position > failures[-1].position][:3] == [
        "SagaStuck",
        "SagaResumed",
        "CompensationStarted",
    ]
    assert history[-1].type == "SagaCompensated"
    assert len(types(history, "Undid")) == 2


# -- idempotent start and cancel --------------------------------------------------------------


def test_the_same_saga_id_and_input_return_the_same_run(rt: sa.Runtime) -> None:
    saga_id = f"same-{uuid.uuid4().hex[:8]}"
    first = rt.start(FOUR, Job(), saga_id=saga_id)
    second = rt.start(FOUR, Job(), saga_id=saga_id)
    assert first.id == second.id == saga_id
    assert first.result(WAIT).status is SagaStatus.COMPLETED
    third = rt.start(FOUR, Job(), saga_id=saga_id)  # after it ended, too
    assert third.id == saga_id
    assert third.result(WAIT).status is SagaStatus.COMPLETED
    history = rt.history(saga_id)
    assert len(types(history, "SagaStarted")) == 1
    assert len(types(history, "Did")) == 4
    assert calls(f"{saga_id}/step_alpha") == 1


def test_the_same_saga_id_with_another_input_or_saga_is_refused(rt: sa.Runtime) -> None:
    saga_id = f"conflict-{uuid.uuid4().hex[:8]}"
    rt.start(FOUR, Job(), saga_id=saga_id).result(WAIT)
    before = rt.history(saga_id)
    with pytest.raises(sa.SagaIdConflict, match=saga_id) as error:
        rt.start(FOUR, Job(fail_at="beta"), saga_id=saga_id)
    assert error.value.saga_id == saga_id
    assert "different input" in str(error.value)
    with pytest.raises(sa.SagaIdConflict, match="'four'"):
        rt.start(four_steps("another"), Job(), saga_id=saga_id)
    assert rt.history(saga_id) == before
    assert rt.start(FOUR, Job()).result(WAIT).status is SagaStatus.COMPLETED


def test_cancel_of_a_running_saga_compensates_it(rt: sa.Runtime) -> None:
    saga_id = f"cancel-{uuid.uuid4().hex[:8]}"
    entered, release = GATES[saga_id] = (threading.Event(), threading.Event())
    try:
        run = rt.start(FOUR, Job(block_at="gamma"), saga_id=saga_id)
        assert entered.wait(WAIT)  # gamma's action is running: the saga is mid-flight
        assert rt.status(saga_id).status is SagaStatus.RUNNING
        rt.cancel(saga_id, "customer changed their mind")
    finally:
        release.set()
    outcome = run.result(WAIT)
    assert outcome.status is SagaStatus.COMPENSATED
    assert outcome.reason == "customer changed their mind"
    # gamma was in doubt when cancelled: compensated first, then beta and alpha
    assert outcome.compensated == ("step_gamma", "step_beta", "step_alpha")
    for p in ("alpha", "beta", "gamma"):
        key = f"{saga_id}/{step_of(p)}"
        assert rt.state(p) == Log(held=[], did=[key], undid=[key])
    assert rt.state("delta") == Log()
    history = rt.history(saga_id)
    assert [e.type for e in history if e.type == "SagaCancelled"] == ["SagaCancelled"]
    assert [e.source for e in types(history, "Undid")] == ["gamma", "beta", "alpha"]

    # cancelling a saga that ended changes nothing
    rt.cancel(saga_id)
    assert rt.start(FOUR, Job()).result(WAIT).status is SagaStatus.COMPLETED
    assert rt.history(saga_id) == history
    with pytest.raises(sa.UnknownSaga):
        rt.cancel("no-such-saga")
