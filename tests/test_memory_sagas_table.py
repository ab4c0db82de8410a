"""The in-memory journal folds its sagas table when it is read (or every so many records), not
at each append: whenever it is read, it says what folding every saga's records from scratch
says, mid-flight and after thousands of sagas."""

from __future__ import annotations

import threading
import time

import msgspec

import sagactor as sa
from sagactor.persistence import memory
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.summaries import SagaQuery, fold_rows

WAIT = 30.0


class _Noted(msgspec.Struct, frozen=True):
    pass


class _Desk(sa.Participant[int]):
    """A participant of this test's own; a closed ``gate`` holds its handler."""

    def __init__(self, name: str, gate: threading.Event | None = None) -> None:
        self.name, self.gate = name, gate

    def initial_state(self) -> int:
        return 0

    @sa.action("note")
    def note(self, ctx: sa.StepContext, n: int) -> int:
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        if n % 7 == 3 and self.name == "last":
            raise sa.StepFailed("sevens fail here")
        ctx.record(_Noted())
        return n

    @sa.compensation("note")
    def unnote(self, ctx: sa.StepContext, n: int, done: int) -> None:
        ctx.record(_Noted())

    @sa.evolve
    def _noted(self, state: int, change: _Noted) -> int:
        return state + 1


TRIO = sa.Saga(
    "trio",
    steps=[sa.Step(name, participant=name, action="note") for name in ("first", "mid", "last")],
    input_type=int,
)


def _from_scratch(journal: MemoryJournal) -> dict[str, sa.SagaRow]:
    records = sorted(journal.read_prefix("saga/"), key=lambda r: (r.stream, r.seq))
    return {row.id: row for row in fold_rows(records)}


def test_rows_read_mid_flight_and_after_many_sagas_match_a_fold_from_scratch() -> None:
    journal = MemoryJournal()
    gate = threading.Event()
    desks = [_Desk("first"), _Desk("mid", gate), _Desk("last")]
    with sa.Runtime.in_memory(participants=desks, sagas=[TRIO], journal=journal) as rt:
        held = rt.start(TRIO, 0)
        deadline = time.monotonic() + WAIT
        while (row := journal.saga_row(held.id)) is None or row.step != "mid":
            assert time.monotonic() < deadline, f"never at its held step: {row}"
            time.sleep(0.005)
        assert (row.status, row.step) == ("running", "mid")
        gate.set()
        runs = rt.start_many(TRIO, list(range(1, 1500)))  # past the fold's threshold
        outcomes = [run.result(WAIT) for run in [held, *runs]]
    failing = sum(1 for n in range(1500) if n % 7 == 3)
    assert sum(o.status is sa.SagaStatus.COMPENSATED for o in outcomes) == failing
    expected = _from_scratch(journal)
    assert len(expected) == 1500
    got = {row.id: row for row in journal.sagas(SagaQuery(limit=10_000))}
    assert got == expected
    assert journal.saga_counts() == {"completed": 1500 - failing, "compensated": failing}


def test_the_backlog_is_folded_every_so_many_records() -> None:
    journal = MemoryJournal()
    with sa.Runtime.in_memory(participants=[_Desk(n) for n in ("first", "mid", "last")],
                              sagas=[TRIO], journal=journal) as rt:  # fmt: skip
        for run in rt.start_many(TRIO, list(range(2000))):
            run.result(WAIT)
        # Nobody read the rows, yet the records waiting to be folded stay under the bound.
        assert 0 < len(journal._unsummarized) < memory._FOLD_EVERY
