"""What a saga in flight costs stays small without changing what callers see.

* every ``run.add_done_callback`` of a saga gets its outcome once, in the order given, however
  many there are, and one that raises does not stop the others;
* a saga that fails, compensates or runs a parallel group reports the same outcome and the
  same ``sagas`` row as before, though its containers are made on first use;
* the ``sagas`` table's upkeep keeps one object per saga in flight (no copy of its input,
  written with its first row) and none once it ended;
* a saga held at its first step keeps no input bytes, its input's digest packed, and none of
  its seldom-set fields (a failure's, a compensation's, a queue's): they cost a dict only once
  set, read the same either way, and a fold of its journal rebuilds it just as lean; the first
  step's command shares one read-only empty ``ctx.results`` and no copy of its policy's errors;
  a queued saga still says how long it waited.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.actor_messages import Command
from sagactor.messages import SagaAdmitted
from sagactor.names import ACTION
from sagactor.persistence.summaries import WRITTEN
from sagactor.sagas.fold import rebuild
from sagactor.sagas.inputs import digest_key, prepare_starts
from sagactor.sagas.machine import SagaState, start
from sagactor.sagas.outcomes import earlier_results
from sagactor.sagas.queueing import admit, start_queued

WAIT = 10.0


class Job(msgspec.Struct, frozen=True):
    n: int
    fail: bool = False


class Desk(sa.Participant[list[int]]):
    name = "desk"

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate

    def initial_state(self) -> list[int]:
        return []

    @sa.action("book")
    def book(self, ctx: sa.StepContext, job: Job) -> int:
        if self.gate is not None:
            self.gate.wait(WAIT)
        ctx.record(job.n)
        return job.n

    @sa.compensation("book")
    def unbook(self, ctx: sa.StepContext, job: Job, done: int) -> None:
        ctx.record(-done)

    @sa.action("check")
    def check(self, ctx: sa.StepContext, job: Job) -> int:
        if job.fail:
            raise sa.StepFailed("no")
        return job.n + 1

    @sa.evolve
    def _booked(self, state: list[int], n: int) -> None:
        state.append(n)


SAGA = sa.Saga(
    "lean",
    [
        sa.Step("book", participant="desk", action="book"),
        sa.Step("check", participant="desk", action="check", compensable=False),
    ],
    input_type=Job,
)


def test_every_done_callback_gets_the_outcome_once_in_order() -> None:
    gate = threading.Event()
    with sa.Runtime.in_memory(participants=[Desk(gate)], sagas=[SAGA]) as rt:
        run = rt.start(SAGA, Job(3))
        seen: list[tuple[str, sa.SagaStatus]] = []

        def failing(outcome: sa.Outcome) -> None:
            seen.append(("failing", outcome.status))
            raise RuntimeError("a caller's bug")

        run.add_done_callback(lambda o: seen.append(("first", o.status)))
        run.add_done_callback(failing)
        third = threading.Event()

        def last(outcome: sa.Outcome) -> None:
            seen.append(("third", outcome.status))
            third.set()

        run.add_done_callback(last)
        assert seen == []  # held at its first step
        gate.set()
        outcome = run.result(WAIT)
        assert third.wait(WAIT)
        run.add_done_callback(lambda o: seen.append(("late", o.status)))  # ended: at once
    done = sa.SagaStatus.COMPLETED
    assert outcome.results == {"book": 3, "check": 4}
    assert seen == [("first", done), ("failing", done), ("third", done), ("late", done)]


@pytest.mark.parametrize("durable", [True, False])
@pytest.mark.parametrize("fail", [False, True])
def test_outcome_and_row_of_a_saga_that_completes_or_compensates(
    tmp_path: Path, fail: bool, durable: bool
) -> None:
    # The row's input is written with its start only (the upkeep keeps no copy): every later
    # row of the saga leaves it, on SQLite and in memory alike.
    rt = (
        sa.Runtime.open(tmp_path / "lean.db", participants=[Desk()], sagas=[SAGA])
        if durable
        else sa.Runtime.in_memory(participants=[Desk()], sagas=[SAGA])
    )
    with rt:
        run = rt.start(SAGA, Job(5, fail=fail))
        outcome = run.result(WAIT)
        row = rt.list(limit=1).rows[0]
        state = rt.state("desk")
    if fail:
        assert outcome.status is sa.SagaStatus.COMPENSATED
        assert outcome.compensated == ("book",)
        assert (row.status, row.step, row.result) == ("compensated", "book", '{"book":5}')
        assert state == [5, -5]
    else:
        assert outcome.status is sa.SagaStatus.COMPLETED
        assert (row.status, row.step, row.result) == ("completed", "check", '{"book":5,"check":6}')
        assert state == [5]
    given = f'{{"n":5,"fail":{str(fail).lower()}}}'
    assert (row.id, row.type, row.input) == (run.id, "lean", given)


def test_the_sagas_row_upkeep_forgets_ended_sagas(tmp_path: Path) -> None:
    gate = threading.Event()
    rt = sa.Runtime.open(tmp_path / "lean.db", participants=[Desk(gate)], sagas=[SAGA])
    try:
        runs = rt.start_many(SAGA, [Job(i) for i in range(20)])
        keeper = rt.engine.journal._writer.summaries  # type: ignore[attr-defined]
        assert len(keeper._tracked) == 20  # one per saga in flight
        # none has set a seldom field (a reason, an end, a cancel): no dict of them made, and
        # none keeps a copy of its input (its row has it)
        assert all(tracked.seldom is None for tracked in keeper._tracked.values())
        assert {tracked.input for tracked in keeper._tracked.values()} == {WRITTEN}
        assert {row.status for row in rt.list(limit=50).rows} == {"running"}
        gate.set()
        assert all(run.result(WAIT).ok for run in runs)
        assert len(keeper._tracked) == 0
    finally:
        gate.set()
        rt.close()


def _held(n: int) -> SagaState:
    """A saga of its own started by the pure machine: held at its first step."""
    (value, raw, saga_id, digest), *_ = prepare_starts(SAGA, [Job(n)], [f"lean-{n}"])
    state, events = start(SAGA, saga_id, "orchestration", value, raw, digest, 100.0)
    assert list(state.running) == ["book"]
    replayed = rebuild(saga_id, SAGA, events)
    assert isinstance(replayed, SagaState)
    for one in (state, replayed):  # live and after a restart alike
        assert one.seldom is None  # nothing seldom-set was made
        assert one.digest == int(digest, 16)  # a 128-bit number, not 32 characters
        assert one.input == Job(n)
    return state


def test_a_held_saga_keeps_no_input_bytes_and_no_seldom_fields() -> None:
    state = _held(1)
    assert not hasattr(state, "input_raw")  # SagaStarted journals them; nothing reads them
    # one slot per field it always uses: the seldom ones share ``seldom``
    assert len(SagaState.__slots__) <= 20
    assert (state.reason, state.queue, state.stack) == ("", (0, 0), [])
    # a read of a container makes it (it may be changed in place): only then
    assert state.seldom == {"stack": []}


def test_seldom_fields_are_made_on_the_first_other_value_and_read_back() -> None:
    state = _held(2)
    state.reason, state.retry_due, state.held = "", 0.0, False  # defaults: nothing made
    assert state.seldom is None
    state.reason = "no stock"
    state.doubt.append("book")
    assert (state.reason, state.doubt, state.retry_due) == ("no stock", ["book"], 0.0)
    assert state.seldom == {"reason": "no stock", "doubt": ["book"]}
    other = _held(3)
    assert (other.reason, other.doubt) == ("", [])  # another saga's are its own


def test_a_first_step_shares_one_read_only_empty_results_mapping() -> None:
    first, second = _held(4), _held(5)
    results = earlier_results(first, "book", ACTION)
    assert results is earlier_results(second, "book", ACTION)
    assert dict(results) == {}
    with pytest.raises(TypeError):
        results["book"] = 1  # type: ignore[index]


def test_a_digest_key_is_equal_only_for_equal_digests() -> None:
    (*_, digest), *_ = prepare_starts(SAGA, [Job(6)], ["lean-6"])
    assert digest_key(digest) == int(digest, 16)
    upper, odd = digest.upper(), "not-a-digest"
    keys: list[Any] = [digest_key(d) for d in (digest, upper, odd)]
    assert keys[1:] == [upper, odd]  # kept as they are: never equal to a packed one
    assert len({repr(k) for k in keys}) == 3


def test_a_queued_saga_still_says_how_long_it_waited() -> None:
    (value, raw, saga_id, digest), *_ = prepare_starts(SAGA, [Job(7)], ["lean-7"])
    state, _ = start_queued(
        SAGA, saga_id, "orchestration", value, raw, digest, 100.0, priority=0, ticket=1
    )
    admitted = admit(state, 102.5)
    assert isinstance(admitted[0], SagaAdmitted)
    assert admitted[0].waited == 2.5
    assert list(state.running) == ["book"]


def test_a_command_reads_the_errors_that_retry_it_from_its_policy() -> None:
    def command(policy: sa.RetryPolicy | None) -> Command:
        return Command(
            saga_id="s", step="book", kind=ACTION, name="book", attempt=1, input=None,
            reply_to=None, policy=policy,
        )  # fmt: skip

    assert "retry_on" not in {f.name for f in msgspec.structs.fields(Command)}
    assert command(sa.RetryPolicy(retry_on=(KeyError,))).retry_on == (KeyError,)
    assert command(None).retry_on == (Exception,)
