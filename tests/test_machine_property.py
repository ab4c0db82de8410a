"""A property test of the pure saga state machine (``sagactor.sagas.machine``), no actors.

A small discrete-event simulation plays the coordinator: it feeds the machine the replies of
simulated participants, the ``Began`` reports of their handlers, the timers the machine asked
for (schedule and run timeouts, retry wake-ups, stale ones included, each delivered at its due
time), a cancel and an operator's resume, on a virtual clock. Each participant has a mailbox
that it works through one message at a time (so a retry or a compensation waits behind a slow
handler, as with the real host), an idempotent inbox and tombstones.

For random step counts, compensable flags, business failures, technical-error counts, retry
policies, time limits, lost replies, slow handlers (longer than the timeout), commands that
wait in transit (shorter or longer than the schedule timeout), slow compensations,
duplicates, cancels and resumes it checks that:

* the saga always terminates, after a bounded number of inputs, in exactly one terminal status
  (a stuck saga ends once more after each resume);
* the outcome is the one an independent oracle predicts (when nothing was cancelled): a wait
  in a mailbox never counts against ``timeout``, a timed-out attempt is retried under the
  step's policy and a later attempt is answered from the inbox, only the last one's timeout
  puts the step in doubt, and a compensation never times out behind a slow action;
* compensation runs in the reverse order of completion, in-doubt steps included, and every
  completed or in-doubt compensable step is compensated when the saga is compensated; an
  in-doubt step without compensation is fenced, and the fence reports whether it ran;
* the participants hold no effect of a compensable step of a compensated saga, never apply an
  action or compensation twice, and never apply an action after its compensation or fence;
* folding the emitted events (through a msgpack round trip, as the journal stores them) with
  ``evolve`` from a fresh state (``fold.rebuild``) gives the live state after every input.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec
from hypothesis import given, note, settings
from hypothesis import strategies as st

from sagactor.actor_messages import Began, Cancel, Reply, Resume, Timeout, Wake
from sagactor.messages import (
    CompensationStarted,
    SagaEvent,
    SagaStatus,
    StepCompensated,
    StepFenced,
    StepSucceeded,
    StepTimedOut,
)
from sagactor.names import ACTION, COMPENSATION, RUN, SCHEDULE, ReplyOutcome
from sagactor.sagas.definition import RetryPolicy, Saga, Step
from sagactor.sagas.effects import Finish, Send, Timer
from sagactor.sagas.fold import rebuild
from sagactor.sagas.machine import SagaState, begin, decide, pending, start

SAGA_ID = "saga-1"
T0 = 1_000.0
TIMEOUT = 1.0  # a step with time limits has this timeout and compensation_timeout ...
SCHEDULES = (0.6, 2.0)  # ... and one of these schedule_timeouts (shorter or longer than it)
LATENCIES = (0.01, 0.3, 0.5)  # a reply's travel time: always below TIMEOUT
MAX_INPUTS = 2_000

_decode_event = msgspec.msgpack.Decoder(SagaEvent).decode
_encode = msgspec.msgpack.encode

# How an action's attempt number `hang_at` misbehaves (only on a step with time limits):
#   lost: the action is applied, its reply is lost (a retry is answered from the inbox)
#   slow: the handler takes SLOW (longer than its timeout), then applies and answers
#   late: the command travels 3.0 before the mailbox (longer than any schedule timeout)
#   queued: the command travels 1.5 (longer than the timeout): a wait before the start that
#           the timeout must not count, while a shorter schedule timeout does
HANGS = ("lost", "slow", "late", "queued")
SLOW = 2.0
TRANSIT = {"late": 3.0, "queued": 1.5}


@dataclass(frozen=True)
class Plan:
    """One step's definition and how its participant behaves."""

    compensable: bool
    max_attempts: int
    retryable: bool  # whether its technical errors are retryable (retry_on matches)
    errors: int  # attempts 1..errors raise a technical error
    business: bool  # then it raises StepFailed
    timeout: bool  # the step has time limits (all three)
    schedule: float  # its schedule_timeout, if it has time limits
    hang_at: int  # 0: never; needs time limits
    hang: str
    comp_max_attempts: int
    comp_errors: int  # this many compensation attempts fail (until an operator fixes it)
    comp_hang_at: int  # 0: never; this compensation attempt is slow (longer than its timeout)
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
    hang = draw(st.sampled_from(HANGS))
    # (A retry queued behind a slow handler waits longer than a short schedule timeout: that
    # times out too, rightly, but the oracle below does not model it.)
    schedule = SCHEDULES[-1] if hang == "slow" else draw(st.sampled_from(SCHEDULES))
    return Plan(
        compensable=draw(st.booleans()),
        max_attempts=max_attempts,
        retryable=draw(st.booleans()),
        errors=draw(st.integers(0, 4)),
        business=draw(st.booleans()),
        timeout=timeout,
        schedule=schedule,
        hang_at=draw(st.integers(0, max_attempts)) if timeout else 0,
        hang=hang,
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
                schedule_timeout=plan.schedule if plan.timeout else None,
                compensation_timeout=TIMEOUT if plan.timeout else None,
                compensation_retry=RetryPolicy(max_attempts=plan.comp_max_attempts, backoff=0.05),
            )
            for i, plan in enumerate(scenario.plans)
        ],
    )


# -- the simulated participants ---------------------------------------------------------------


@dataclass(frozen=True)
class Arrive:
    """A command reaches its participant's mailbox (not a machine input)."""

    send: Send


@dataclass(frozen=True)
class Free:
    """A participant's handler finished: it takes the next message (not a machine input)."""

    participant: str


@dataclass(frozen=True)
class Handling:
    """How a participant handled one command."""

    reply: Reply | None  # None: no reply will ever come
    began: bool = False  # its handler ran (not answered from the inbox, nothing refused)
    takes: float = 0.0  # how long the handler kept the participant busy


@dataclass
class Participants:
    """Every step's participant, with an idempotent inbox and tombstones like the real host."""

    scenario: Scenario
    saga: Saga
    inbox: dict[tuple[str, str], str] = field(default_factory=dict)  # (step, kind) -> outcome
    applied: list[str] = field(default_factory=list)  # steps whose action took effect, in order
    undone: list[str] = field(default_factory=list)  # steps whose compensation took effect
    fenced: dict[str, str] = field(default_factory=dict)  # step -> what its fence found
    comp_failures: dict[str, int] = field(default_factory=dict)
    fixed: bool = False

    def plan(self, step: str) -> Plan:
        return self.scenario.plans[self.saga.index(step)]

    def fix(self) -> None:
        """The operator repairs whatever made compensations fail."""
        self.fixed = True

    def transit(self, send: Send) -> float:
        """How long ``send`` travels before it reaches the mailbox (0 unless it hangs)."""
        plan = self.plan(send.step)
        hangs = send.kind == ACTION and send.attempt == plan.hang_at
        return TRANSIT.get(plan.hang, 0.0) if hangs else 0.0

    def handle(self, send: Send) -> Handling:
        plan = self.plan(send.step)
        if send.kind == ACTION:
            return self._action(send, plan)
        if not self.saga.step(send.step).compensable:
            return self._fence(send)
        return self._compensation(send, plan)

    def _reply(self, send: Send, outcome: ReplyOutcome, **extra: Any) -> Reply:
        return Reply(SAGA_ID, send.step, send.kind, send.attempt, outcome, **extra)

    def _action(self, send: Send, plan: Plan) -> Handling:
        key = (send.step, ACTION)
        if (send.step, COMPENSATION) in self.inbox and key not in self.inbox:
            return Handling(self._reply(send, "failed", reason="refused: compensated before"))
        if key in self.inbox:  # a repeat: answered from the inbox, nothing applied again
            return Handling(self._answer(send, self.inbox[key]))
        if send.attempt == plan.hang_at and plan.hang in ("lost", "slow"):
            self._apply(send.step)
            if plan.hang == "lost":
                return Handling(None, began=True)
            return Handling(self._answer(send, "ok"), began=True, takes=SLOW)
        if send.attempt <= plan.errors:
            reply = self._reply(send, "error", reason="flaky", retryable=plan.retryable)
            return Handling(reply, began=True)
        if plan.business:
            self.inbox[key] = "failed"
            return Handling(self._reply(send, "failed", reason="no"), began=True)
        self._apply(send.step)
        return Handling(self._answer(send, "ok"), began=True)

    def _apply(self, step: str) -> None:
        assert step not in self.applied, f"action of {step} applied twice"
        assert (step, COMPENSATION) not in self.inbox, f"action of {step} applied after its undo"
        self.applied.append(step)
        self.inbox[(step, ACTION)] = "ok"

    def _answer(self, send: Send, outcome: str) -> Reply:
        if outcome == "ok":
            return self._reply(send, "ok", result=send.step, raw=msgspec.Raw(_encode(send.step)))
        return self._reply(send, "failed", reason="no")

    def _fence(self, send: Send) -> Handling:
        """A non-compensable step in doubt: record what happened, refuse later copies."""
        key = (send.step, COMPENSATION)
        if key not in self.inbox:
            did = self.inbox.get((send.step, ACTION))
            found = {"ok": "completed", "failed": "failed", None: "refused"}[did]
            self.fenced[send.step] = found
            self.inbox[key] = found
        return Handling(self._reply(send, "ok", reason=self.inbox[key]))

    def _compensation(self, send: Send, plan: Plan) -> Handling:
        key = (send.step, COMPENSATION)
        if key in self.inbox:
            return Handling(self._reply(send, "ok"))
        takes = 0.0
        if not self.fixed:
            if send.attempt == plan.comp_hang_at:
                takes = SLOW  # it will apply, but answer after its timeout
            else:
                failed = self.comp_failures.get(send.step, 0)
                if failed < plan.comp_errors:
                    self.comp_failures[send.step] = failed + 1
                    reply = self._reply(send, "error", reason="compensation flaked")
                    return Handling(reply, began=True)
        if self.inbox.get((send.step, ACTION)) == "ok":
            assert send.step not in self.undone, f"compensation of {send.step} applied twice"
            self.undone.append(send.step)
        # else: a tombstone (nothing to undo; a late action will be refused)
        self.inbox[key] = "ok"
        return Handling(self._reply(send, "ok"), began=True, takes=takes)


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
    """The journaled part of the state (``began`` is runtime-only by design)."""
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
    mailboxes: dict[str, deque[Send]] = {step.participant: deque() for step in saga.steps}
    busy: set[str] = set()

    def at(when: float, message: Any) -> None:
        heapq.heappush(queue, (when, next(order), message))

    raw = _encode(None)
    state, events = start(saga, SAGA_ID, "orchestration", None, raw, "digest", T0)
    log = [_decode_event(_encode(e)) for e in events]
    snapshots = [(len(log), view(state))]
    in_doubt: list[str] = []
    resumes = 0
    inputs = 0

    def perform(effects: list[Any], now: float) -> None:
        """What the coordinator does after a commit: issue what ``pending`` asks for."""
        nonlocal resumes
        for effect in effects:
            if isinstance(effect, Send):
                timer = effect.schedule_timer(SAGA_ID, now)
                if timer is not None:
                    at(timer.due, timer.message)
                at(now + people.transit(effect), Arrive(effect))
            elif isinstance(effect, Timer):
                at(effect.due, effect.message)
            elif isinstance(effect, Finish) and effect.status is SagaStatus.STUCK:
                if not scenario.resume or resumes:
                    continue
                resumes += 1
                people.fix()  # the operator repairs what failed, then resumes
                at(now + scenario.resume_after, Resume(SAGA_ID))

    def work(participant: str, now: float) -> None:
        """The participant takes the next message from its mailbox, if it is free."""
        if participant in busy or not mailboxes[participant]:
            return
        send = mailboxes[participant].popleft()
        done = people.handle(send)
        if done.began:
            at(now, Began(SAGA_ID, send.step, send.kind, send.attempt, now))
        busy.add(participant)
        at(now + done.takes, Free(participant))
        if done.reply is not None:
            latency = people.plan(send.step).latency
            at(now + done.takes + latency, done.reply)
            if people.plan(send.step).duplicate:
                at(now + done.takes + 2 * latency, done.reply)

    perform(pending(state), T0)
    if scenario.cancel_at is not None:
        at(T0 + scenario.cancel_at, Cancel(SAGA_ID, "cancelled by the customer"))

    while queue:
        now, _, message = heapq.heappop(queue)
        if isinstance(message, Arrive):
            participant = saga.step(message.send.step).participant
            mailboxes[participant].append(message.send)
            work(participant, now)
            continue
        if isinstance(message, Free):
            busy.discard(message.participant)
            work(message.participant, now)
            continue
        if isinstance(message, Began):
            perform(begin(state, message), now)
            continue
        inputs += 1
        assert inputs <= MAX_INPUTS, "the machine does not terminate"
        was_running = state.status is SagaStatus.RUNNING
        current = state.step
        new = decide(state, message, now)
        if not new:
            continue
        stopped = was_running and state.status is not SagaStatus.RUNNING
        if stopped and isinstance(message, Cancel | Timeout):
            in_doubt.append(current)  # sent, no answer yet: it may or may not have applied
        if stopped and isinstance(message, Reply) and message.outcome == "error":
            in_doubt.append(message.step)  # a technical failure: nothing recorded it either way
        log += [_decode_event(_encode(e)) for e in new]  # as the journal stores them
        snapshots.append((len(log), view(state)))
        perform(pending(state), now)
    return Trace(state, log, snapshots, inputs, resumes, in_doubt, people)


# -- an independent oracle --------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    status: SagaStatus
    done: list[str]
    compensated: list[str]
    timed_out: list[str]  # the limit of the StepTimedOut that put a step in doubt, if one did


def expected_outcome(scenario: Scenario) -> Expected:
    """What happens when nothing is cancelled."""
    saga = definition(scenario)
    done: list[str] = []
    in_doubt: str | None = None
    failed = False
    timed_out: list[str] = []
    for step, plan in zip(saga.steps, scenario.plans, strict=True):
        outcome = _action_outcome(plan)
        if outcome == "ok":
            done.append(step.name)
            continue
        if outcome in (RUN, SCHEDULE):
            timed_out.append(outcome)
        in_doubt = step.name if outcome != "failed" else None
        failed = True
        break
    if not failed:
        return Expected(SagaStatus.COMPLETED, done, [], [])
    stack = [s for s in [*done, *([in_doubt] if in_doubt else [])] if saga.step(s).compensable]
    order = list(reversed(stack))
    if scenario.resume:
        return Expected(SagaStatus.COMPENSATED, done, order, timed_out)
    compensated: list[str] = []
    for name in order:
        if not _compensates(scenario.plans[saga.index(name)]):
            return Expected(SagaStatus.STUCK, done, compensated, timed_out)
        compensated.append(name)
    return Expected(SagaStatus.COMPENSATED, done, compensated, timed_out)


def _action_outcome(plan: Plan) -> str:
    """ok, failed (business), technical (out of attempts), or the limit (RUN or SCHEDULE) of
    the last attempt's timeout (in doubt)."""
    for attempt in range(1, plan.max_attempts + 1):
        last = attempt == plan.max_attempts
        hang = plan.hang if attempt == plan.hang_at else ""
        if hang in ("lost", "slow"):
            # It applied: a retry is answered from the inbox; the last attempt is in doubt.
            return RUN if last else "ok"
        if hang in TRANSIT and TRANSIT[hang] > plan.schedule:
            if last:  # never started in time: retried, or in doubt if it was the last
                return SCHEDULE
            continue
        # (a command that waited less than its schedule_timeout was never late, whatever the
        # wait: its timeout counts from its start)
        if attempt <= plan.errors:
            if plan.retryable and not last:
                continue
            return "technical"
        return "failed" if plan.business else "ok"
    raise AssertionError("unreachable: the last attempt always decides")


def _compensates(plan: Plan) -> bool:
    """Whether the step's compensation succeeds within its attempts (before any resume)."""
    failures = 0
    for attempt in range(1, plan.comp_max_attempts + 1):
        if attempt == plan.comp_hang_at:
            # Slow: it applies after its timeout; a retry (queued behind it) reads the inbox.
            return attempt < plan.comp_max_attempts
        if failures < plan.comp_errors:
            failures += 1
            continue
        return True
    return False


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

    # The participants agree: a compensated saga leaves no effect of a compensable step. (A
    # stuck saga's last compensation may have applied after it timed out: it is in doubt.)
    people = trace.participants
    undone = [s for s in compensated if s in people.applied]
    if state.status is SagaStatus.STUCK and people.undone == [*undone, state.stack[-1]]:
        undone = people.undone
    assert people.undone == undone
    if state.status is SagaStatus.COMPENSATED:
        assert [
            s for s in people.applied if saga.step(s).compensable and s not in people.undone
        ] == []
    if state.status is SagaStatus.COMPLETED:
        assert people.applied == state.done
        assert people.undone == []

    # An in-doubt step without compensation is fenced once the saga stops running, before any
    # compensation; the saga records what the participant found, and says it in its reason.
    fenced = {e.step: e.outcome for e in events if isinstance(e, StepFenced)}
    assert fenced == people.fenced
    if state.status is not SagaStatus.COMPLETED:
        assert list(fenced) == [s for s in trace.in_doubt if not saga.step(s).compensable]
    for step, found in fenced.items():
        assert (found == "completed") == (step in people.applied)
        if "SagaStuck" not in names:  # (a saga once stuck says why it was)
            assert f"({step!r} was in flight: it " in state.reason
        first = next(e for e in events if isinstance(e, CompensationStarted))
        assert first.step == step

    # Once the operator fixed what failed, no compensation fails again (no stale timer counts).
    if "SagaResumed" in names:
        assert "CompensationFailed" not in names[names.index("SagaResumed") :]

    # What an independent reading of the scenario predicts (a cancel makes timing matter).
    if scenario.cancel_at is None:
        expected = expected_outcome(scenario)
        assert state.status is expected.status
        assert state.done == expected.done
        assert compensated == expected.compensated
        assert [e.limit for e in events if isinstance(e, StepTimedOut)] == expected.timed_out

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
            Step(
                "a",
                "p",
                "act",
                compensation_timeout=TIMEOUT,
                compensation_retry=RetryPolicy(max_attempts=1),
            ),
            Step("b", "p", "act"),
        ],
    )
    state, _ = start(saga, SAGA_ID, "orchestration", None, _encode(None), "d", T0)
    ok = Reply(SAGA_ID, "a", ACTION, 1, "ok", "a", msgspec.Raw(_encode("a")))
    decide(state, ok, T0 + 0.1)
    decide(state, Reply(SAGA_ID, "b", ACTION, 1, "failed", reason="no"), T0 + 0.2)
    assert (state.step, state.kind, state.attempt) == ("a", COMPENSATION, 1)
    (timer,) = begin(state, Began(SAGA_ID, "a", COMPENSATION, 1, T0 + 0.2))
    assert isinstance(timer, Timer)
    assert timer.due == T0 + 0.2 + TIMEOUT
    stale = timer.message
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
