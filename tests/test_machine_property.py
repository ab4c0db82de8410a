"""A property test of the pure saga state machine (``sagactor.sagas.machine``), no actors.

A small discrete-event simulation plays the coordinator: it feeds the machine the replies of
simulated participants, the timers the machine asked for (timeouts and retry wake-ups, stale
ones included, each delivered at its due time), a cancel and an operator's resume, on a
virtual clock. The participants keep an idempotent inbox and tombstones like the real host.

For random step counts, compensable flags, business failures, technical-error counts, retry
policies, timeouts, lost and late messages, duplicates, cancels and resumes it checks that:

* the saga always terminates, after a bounded number of inputs, in exactly one terminal status
  (a stuck saga ends once more after each resume);
* the outcome is the one an independent oracle predicts (when nothing was cancelled);
* compensation runs in the reverse order of completion, in-doubt steps included, and every
  completed or in-doubt compensable step is compensated when the saga is compensated;
* the participants hold no effect of a compensable step of a compensated saga, and never apply
  an action or compensation twice, late actions included;
* folding the emitted events (through a msgpack round trip, as the journal stores them) with
  ``evolve`` from a fresh state (``recovery.rebuild``) gives the live state after every input.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import given, note, settings
from hypothesis import strategies as st

from sagactor.messages import SagaEvent, SagaStatus, StepCompensated, StepSucceeded
from sagactor.persistence.recovery import rebuild
from sagactor.sagas.definition import RetryPolicy, Saga, Step
from sagactor.sagas.machine import (
    ACTION,
    COMPENSATION,
    Cancel,
    Finish,
    Reply,
    Resume,
    SagaState,
    Send,
    Timeout,
    Timer,
    Wake,
    decide,
    pending,
    start,
)

SAGA_ID = "saga-1"
T0 = 1_000.0
TIMEOUT = 1.0  # every step with a timeout has this one
LATENCIES = (0.01, 0.3, 0.5)  # a reply's travel time: always below TIMEOUT
MAX_INPUTS = 2_000

_decode_event = msgspec.msgpack.Decoder(SagaEvent).decode
_encode = msgspec.msgpack.encode

# How an action's attempt number `hang_at` misbehaves:
#   lost: the action is applied, its reply is lost (the step is in doubt; it did happen)
#   late: the command reaches the participant after the step timed out (tombstone refuses it)
#   slow: the command reaches the participant late, still before the timeout (no harm)
HANGS = ("lost", "late", "slow")
DELIVERY_DELAY = {"late": 3.0, "slow": 0.2}


@dataclass(frozen=True)
class Plan:
    """One step's definition and how its participant behaves."""

    compensable: bool
    max_attempts: int
    retryable: bool  # whether its technical errors are retryable (retry_on matches)
    errors: int  # attempts 1..errors raise a technical error
    business: bool  # then it raises StepFailed
    timeout: bool
    hang_at: int  # 0: never; needs a timeout
    hang: str
    comp_max_attempts: int
    comp_errors: int  # this many compensation attempts fail (until an operator fixes it)
    comp_hang_at: int  # 0: never; the compensation command of this attempt is lost
    latency: float
    duplicate: bool  # every reply of this participant is delivered twice


@dataclass(frozen=True)
class Scenario:
    plans: tuple[Plan, ...]
    cancel_at: float | None  # virtual seconds after the start
    resume: bool  # an operator fixes the compensations and resumes a stuck saga
    resume_after: float


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    timeout = draw(st.booleans())
    max_attempts = draw(st.integers(1, 4))
    comp_max_attempts = draw(st.integers(1, 3))
    return Plan(
        compensable=draw(st.booleans()),
        max_attempts=max_attempts,
        retryable=draw(st.booleans()),
        errors=draw(st.integers(0, 4)),
        business=draw(st.booleans()),
        timeout=timeout,
        hang_at=draw(st.integers(0, max_attempts)) if timeout else 0,
        hang=draw(st.sampled_from(HANGS)),
        comp_max_attempts=comp_max_attempts,
        comp_errors=draw(st.integers(0, 3)),
        comp_hang_at=draw(st.integers(0, comp_max_attempts)) if timeout else 0,
        latency=draw(st.sampled_from(LATENCIES)),
        duplicate=draw(st.booleans()),
    )


scenarios = st.builds(
    Scenario,
    plans=st.lists(plans(), min_size=1, max_size=6).map(tuple),
    cancel_at=st.none() | st.floats(0.0, 6.0),
    resume=st.booleans(),
    resume_after=st.sampled_from([0.05, 0.2, 2.0]),
)


def definition(scenario: Scenario) -> Saga:
    return Saga(
        "prop",
        steps=[
            Step(
                f"s{i}",
                participant=f"p{i}",
                action="act",
                compensable=plan.compensable,
                retry=RetryPolicy(max_attempts=plan.max_attempts, backoff=0.05),
                timeout=TIMEOUT if plan.timeout else None,
                compensation_retry=RetryPolicy(max_attempts=plan.comp_max_attempts, backoff=0.05),
            )
            for i, plan in enumerate(scenario.plans)
        ],
    )


# -- the simulated participants ---------------------------------------------------------------


@dataclass(frozen=True)
class Deliver:
    """A command reaching its participant late (not a machine input)."""

    send: Send


@dataclass
class Participants:
    """Every step's participant, with an idempotent inbox and tombstones like the real host."""

    scenario: Scenario
    saga: Saga
    inbox: dict[tuple[str, str], str] = field(default_factory=dict)  # (step, kind) -> outcome
    applied: list[str] = field(default_factory=list)  # steps whose action took effect, in order
    undone: list[str] = field(default_factory=list)  # steps whose compensation took effect
    comp_failures: dict[str, int] = field(default_factory=dict)
    fixed: bool = False

    def plan(self, step: str) -> Plan:
        return self.scenario.plans[self.saga.index(step)]

    def fix(self) -> None:
        """The operator repairs whatever made compensations fail."""
        self.fixed = True

    def handle(self, send: Send, *, late: bool = False) -> tuple[Reply | None, float]:
        """The reply to ``send`` (None: no reply will ever come) and its travel time.

        The command of a hanging attempt is either handled with its reply lost, or raises
        :class:`_Delay` so that the caller delivers it again later (``late=True``).
        """
        plan = self.plan(send.step)
        reply: Reply | None
        if send.kind == ACTION:
            reply = self._action(send, plan, late)
        else:
            reply = self._compensation(send, plan)
        return reply, plan.latency

    def _reply(self, send: Send, outcome: str, **extra: Any) -> Reply:
        return Reply(SAGA_ID, send.step, send.kind, send.attempt, outcome, **extra)

    def _action(self, send: Send, plan: Plan, late: bool) -> Reply | None:
        key = (send.step, ACTION)
        if (send.step, COMPENSATION) in self.inbox and key not in self.inbox:
            return self._reply(send, "failed", reason="refused: compensated before it ran")
        if key in self.inbox:  # a repeat: answered from the inbox, nothing applied again
            return self._answer(send, self.inbox[key])
        if not late and send.attempt == plan.hang_at:
            if plan.hang == "lost":
                self._apply(send.step)
                return None
            raise _Delay(DELIVERY_DELAY[plan.hang])
        if send.attempt <= plan.errors:
            return self._reply(send, "error", reason="flaky", retryable=plan.retryable)
        if plan.business:
            self.inbox[key] = "failed"
            return self._reply(send, "failed", reason="no")
        self._apply(send.step)
        return self._answer(send, "ok")

    def _apply(self, step: str) -> None:
        assert step not in self.applied, f"action of {step} applied twice"
        self.applied.append(step)
        self.inbox[(step, ACTION)] = "ok"

    def _answer(self, send: Send, outcome: str) -> Reply:
        if outcome == "ok":
            return self._reply(send, "ok", result=send.step, raw=msgspec.Raw(_encode(send.step)))
        return self._reply(send, "failed", reason="no")

    def _compensation(self, send: Send, plan: Plan) -> Reply | None:
        key = (send.step, COMPENSATION)
        if key in self.inbox:
            return self._reply(send, "ok")
        if not self.fixed:
            if send.attempt == plan.comp_hang_at:
                return None  # the command is lost: the compensation times out
            failed = self.comp_failures.get(send.step, 0)
            if failed < plan.comp_errors:
                self.comp_failures[send.step] = failed + 1
                return self._reply(send, "error", reason="compensation flaked", retryable=True)
        if self.inbox.get((send.step, ACTION)) == "ok":
            assert send.step not in self.undone, f"compensation of {send.step} applied twice"
            self.undone.append(send.step)
        # else: a tombstone (nothing to undo; a late action will be refused)
        self.inbox[key] = "ok"
        return self._reply(send, "ok")


class _Delay(Exception):  # noqa: N818 - control flow inside the simulation
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


# -- the simulation ---------------------------------------------------------------------------


@dataclass
class Trace:
    state: SagaState
    events: list[SagaEvent]
    snapshots: list[tuple[int, tuple[Any, ...]]]  # (events so far, view of the live state)
    inputs: int
    resumes: int
    in_doubt: list[str]  # steps whose effect was unknown when the saga started compensating
    participants: Participants


def view(state: SagaState) -> tuple[Any, ...]:
    return (
        state.status,
        state.step,
        state.kind,
        state.attempt,
        state.attempt_base,
        state.deadline,
        state.retry_due,
        list(state.done),
        list(state.compensated),
        list(state.stack),
        state.reason,
        state.seq,
        sorted(state.results),
    )


def simulate(scenario: Scenario) -> Trace:
    saga = definition(scenario)
    people = Participants(scenario, saga)
    queue: list[tuple[float, int, Any]] = []
    order = itertools.count()

    def at(when: float, message: Any) -> None:
        heapq.heappush(queue, (when, next(order), message))

    raw = _encode(None)
    state, events = start(saga, SAGA_ID, "orchestration", None, raw, "digest", T0)
    log = [_decode_event(_encode(e)) for e in events]
    snapshots = [(len(log), view(state))]
    in_doubt: list[str] = []
    resumes = 0
    inputs = 0

    def perform(now: float) -> None:
        """What the coordinator does after a commit: issue what ``pending`` asks for."""
        nonlocal resumes
        for effect in pending(state):
            if isinstance(effect, Send):
                deliver(effect, now)
            elif isinstance(effect, Timer):
                at(effect.due, effect.message)
            elif isinstance(effect, Finish) and effect.status is SagaStatus.STUCK:
                if not scenario.resume or resumes:
                    continue
                resumes += 1
                people.fix()  # the operator repairs what failed, then resumes
                at(now + scenario.resume_after, Resume(SAGA_ID))

    def deliver(send: Send, now: float, late: bool = False) -> None:
        try:
            reply, latency = people.handle(send, late=late)
        except _Delay as delay:
            at(now + delay.seconds, Deliver(send))
            return
        if reply is not None:
            at(now + latency, reply)
            if people.plan(send.step).duplicate:
                at(now + 2 * latency, reply)

    perform(T0)
    if scenario.cancel_at is not None:
        at(T0 + scenario.cancel_at, Cancel(SAGA_ID, "cancelled by the customer"))

    while queue:
        now, _, message = heapq.heappop(queue)
        if isinstance(message, Deliver):
            deliver(message.send, now, late=True)
            continue
        inputs += 1
        assert inputs <= MAX_INPUTS, "the machine does not terminate"
        was_running = state.status is SagaStatus.RUNNING
        flying = state.step if state.in_flight and state.kind == ACTION else None
        new = decide(state, message, now)
        if not new:
            continue
        stopped = was_running and state.status is not SagaStatus.RUNNING
        if stopped and flying is not None and isinstance(message, Cancel | Timeout):
            in_doubt.append(flying)  # in flight: it may or may not have applied
        if stopped and isinstance(message, Reply) and message.outcome == "error":
            in_doubt.append(message.step)  # a technical failure: nothing recorded it either way
        log += [_decode_event(_encode(e)) for e in new]  # as the journal stores them
        snapshots.append((len(log), view(state)))
        perform(now)
    return Trace(state, log, snapshots, inputs, resumes, in_doubt, people)


# -- an independent oracle --------------------------------------------------------------------


def expected_outcome(scenario: Scenario) -> tuple[SagaStatus, list[str], list[str]]:
    """Status, completed steps and compensation order when nothing is cancelled."""
    saga = definition(scenario)
    done: list[str] = []
    in_doubt: str | None = None
    failed = False
    for step, plan in zip(saga.steps, scenario.plans, strict=True):
        outcome = ""
        for attempt in range(1, plan.max_attempts + 1):
            if attempt == plan.hang_at and plan.hang in ("lost", "late"):
                outcome = "timeout"
            elif attempt <= plan.errors:
                if plan.retryable and attempt < plan.max_attempts:
                    continue
                outcome = "technical"
            else:
                outcome = "failed" if plan.business else "ok"
            break
        if outcome == "ok":
            done.append(step.name)
            continue
        in_doubt = step.name if outcome in ("timeout", "technical") else None
        failed = True
        break
    if not failed:
        return SagaStatus.COMPLETED, done, []
    stack = [s for s in [*done, *([in_doubt] if in_doubt else [])] if saga.step(s).compensable]
    order = list(reversed(stack))
    if scenario.resume:
        return SagaStatus.COMPENSATED, done, order
    compensated: list[str] = []
    for name in order:
        plan = scenario.plans[saga.index(name)]
        failures = 0
        for attempt in range(1, plan.comp_max_attempts + 1):
            if attempt == plan.comp_hang_at:
                continue
            if failures < plan.comp_errors:
                failures += 1
                continue
            compensated.append(name)
            break
        else:
            return SagaStatus.STUCK, done, compensated
    return SagaStatus.COMPENSATED, done, compensated


# -- the property -----------------------------------------------------------------------------

FINAL_EVENT = {
    SagaStatus.COMPLETED: "SagaCompleted",
    SagaStatus.COMPENSATED: "SagaCompensated",
    SagaStatus.STUCK: "SagaStuck",
}


# Each example is a pure simulation of a few milliseconds: run many more than the profile's
# default (the stale-message bug after a resume needed a few hundred to show up).
@settings(max_examples=20 * settings().max_examples)
@given(scenarios)
def test_the_machine_terminates_compensates_in_reverse_and_replays(scenario: Scenario) -> None:
    trace = simulate(scenario)
    state, events = trace.state, trace.events
    names = [type(e).__name__ for e in events]
    note(f"events: {names}")
    note(f"final: {view(state)}")

    # It terminates, within a bound that depends only on the definition.
    assert state.status.terminal
    per_step = [p.max_attempts + 2 * (p.comp_max_attempts + 1) for p in scenario.plans]
    bound = 4 * (sum(per_step) + 2) * (trace.resumes + 1) + 10
    assert trace.inputs <= bound

    # Exactly one terminal status: a final event ends the stream, except a stuck saga's, which
    # only an operator's resume may follow; the last event is the status the state shows.
    finals = [i for i, name in enumerate(names) if name in FINAL_EVENT.values()]
    assert len(finals) == 1 + names.count("SagaResumed")
    for i in finals[:-1]:
        assert names[i] == "SagaStuck"
        assert names[i + 1] == "SagaResumed"
    assert finals[-1] == len(names) - 1
    assert names[-1] == FINAL_EVENT[state.status]
    assert names[0] == "SagaStarted"

    # Compensation order: the reverse of completion order, in-doubt steps included.
    saga = state.definition
    completed = [e.step for e in events if isinstance(e, StepSucceeded)]
    assert completed == state.done
    assert completed == [s.name for s in saga.steps[: len(completed)]]
    assert len(trace.in_doubt) <= 1
    to_undo = [s for s in dict.fromkeys([*completed, *trace.in_doubt]) if saga.step(s).compensable]
    compensated = [e.step for e in events if isinstance(e, StepCompensated)]
    assert compensated == state.compensated
    if state.status is SagaStatus.COMPLETED:
        assert state.done == [s.name for s in saga.steps]
        assert compensated == []
        assert "CompensationStarted" not in names
    elif state.status is SagaStatus.COMPENSATED:
        assert compensated == list(reversed(to_undo))
        assert state.stack == []
    else:
        assert compensated == list(reversed(to_undo))[: len(compensated)]
        assert state.stack == to_undo[: len(to_undo) - len(compensated)]
        assert repr(state.stack[-1]) in state.reason

    # The participants agree: a compensated saga leaves no effect of a compensable step.
    people = trace.participants
    assert people.undone == [s for s in compensated if s in people.applied]
    if state.status is SagaStatus.COMPENSATED:
        assert [
            s for s in people.applied if saga.step(s).compensable and s not in people.undone
        ] == []
    if state.status is SagaStatus.COMPLETED:
        assert people.applied == state.done
        assert people.undone == []

    # Once the operator fixed what failed, no compensation fails again (no stale timer counts).
    if "SagaResumed" in names:
        assert "CompensationFailed" not in names[names.index("SagaResumed") :]

    # What an independent reading of the scenario predicts (a cancel makes timing matter).
    if scenario.cancel_at is None:
        status, done, order = expected_outcome(scenario)
        assert state.status is status
        assert state.done == done
        assert compensated == order

    # Replay: folding the journaled events from a fresh state gives the live state, at every
    # point the coordinator committed.
    for count, seen in trace.snapshots:
        replayed = rebuild(SAGA_ID, saga, events[:count])
        assert isinstance(replayed, SagaState)
        assert view(replayed) == seen


def test_a_stale_timeout_after_a_resume_does_not_fail_the_resumed_compensation() -> None:
    """The compensation timer of a stuck saga's attempt may still be due when an operator
    resumes it, and that attempt's reply may still be on its way: neither may count against
    the resumed attempt (this failed when a resume numbered its attempts from 1 again)."""
    saga = Saga(
        "resumed",
        steps=[
            Step("a", "p", "act", timeout=TIMEOUT, compensation_retry=RetryPolicy(max_attempts=1)),
            Step("b", "p", "act"),
        ],
    )
    state, _ = start(saga, SAGA_ID, "orchestration", None, _encode(None), "d", T0)
    ok = Reply(SAGA_ID, "a", ACTION, 1, "ok", "a", msgspec.Raw(_encode("a")))
    decide(state, ok, T0 + 0.1)
    decide(state, Reply(SAGA_ID, "b", ACTION, 1, "failed", reason="no"), T0 + 0.2)
    assert (state.step, state.kind, state.attempt) == ("a", COMPENSATION, 1)
    stale = Timeout(SAGA_ID, "a", COMPENSATION, 1)  # due at T0 + 0.2 + TIMEOUT
    error = Reply(SAGA_ID, "a", COMPENSATION, 1, "error", reason="x")
    stuck = decide(state, error, T0 + 0.3)
    assert [type(e).__name__ for e in stuck] == ["CompensationFailed", "SagaStuck"]
    assert state.reason == "compensation of 'a' failed after 1 attempt(s): x"
    resumed = decide(state, Resume(SAGA_ID), T0 + 0.4)
    assert [type(e).__name__ for e in resumed] == ["SagaResumed", "CompensationStarted"]
    assert decide(state, stale, T0 + 0.2 + TIMEOUT) == []
    assert decide(state, error, T0 + 0.2 + TIMEOUT) == []  # a duplicate of the old reply
    assert state.status is SagaStatus.COMPENSATING
    (send,) = [e for e in pending(state) if isinstance(e, Send)]
    ok = Reply(SAGA_ID, "a", COMPENSATION, send.attempt, "ok")
    done = decide(state, ok, T0 + 0.2 + TIMEOUT + 0.01)
    assert [type(e).__name__ for e in done] == ["StepCompensated", "SagaCompensated"]


def test_a_resumed_compensation_gets_a_fresh_retry_budget() -> None:
    policy = RetryPolicy(max_attempts=2, backoff=0.01)
    saga = Saga(
        "again", steps=[Step("a", "p", "act", compensation_retry=policy), Step("b", "p", "act")]
    )
    state, _ = start(saga, SAGA_ID, "orchestration", None, _encode(None), "d", T0)
    decide(state, Reply(SAGA_ID, "a", ACTION, 1, "ok", "a", msgspec.Raw(_encode("a"))), T0)
    decide(state, Reply(SAGA_ID, "b", ACTION, 1, "failed", reason="no"), T0)
    now = T0
    for round_ in range(3):  # stuck, resumed, stuck again ... each time after 2 attempts
        for _ in range(policy.max_attempts):
            (send,) = [e for e in pending(state) if isinstance(e, Send)]
            now += 1
            decide(state, Reply(SAGA_ID, "a", COMPENSATION, send.attempt, "error", reason="x"), now)
            if state.retry_due:
                decide(state, Wake(SAGA_ID, "a", COMPENSATION, send.attempt), now)
        assert state.status is SagaStatus.STUCK, round_
        assert "after 2 attempt(s)" in state.reason
        decide(state, Resume(SAGA_ID), now)
    assert state.attempt == 7  # numbered on across resumes: 1-2, 3-4, 5-6, then 7


def test_a_wake_for_a_finished_retry_is_ignored() -> None:
    saga = Saga("w", steps=[Step("a", "p", "act", retry=RetryPolicy(max_attempts=3))])
    state, _ = start(saga, SAGA_ID, "orchestration", None, _encode(None), "d", T0)
    error = Reply(SAGA_ID, "a", ACTION, 1, "error", reason="x", retryable=True)
    assert [type(e).__name__ for e in decide(state, error, T0)] == ["StepRetrying"]
    wake = Wake(SAGA_ID, "a", ACTION, 1)
    assert [type(e).__name__ for e in decide(state, wake, T0 + 1)] == ["StepStarted"]
    assert decide(state, wake, T0 + 2) == []  # a duplicate wake-up
    assert decide(state, error, T0 + 2) == []  # a duplicate of the old error
    assert state.attempt == 2
