"""The counting ledger that ``sagactor.testing`` ships counts each step's effect once per run,
undoes it once on compensation, and names any key applied twice."""

from __future__ import annotations

import msgspec

import sagactor as sa
from sagactor.testing import CountingLedger, LedgerState

WAIT = 10.0


class Job(msgspec.Struct, frozen=True):
    id: str
    fail_at: str = ""


SAGA = sa.Saga(
    "two",
    [
        sa.Step("a", participant="first", action="do"),
        sa.Step("b", participant="second", action="do"),
    ],
    input_type=Job,
)


def test_counts_effects_and_compensations_by_idempotency_key() -> None:
    with sa.Runtime.in_memory(
        participants=[CountingLedger("first"), CountingLedger("second")]
    ) as rt:
        done = rt.start(SAGA, Job("ok"), saga_id="ok").result(WAIT)
        failed = rt.start(SAGA, Job("no", fail_at="b"), saga_id="no").result(WAIT)
        first: LedgerState = rt.state("first")
        second: LedgerState = rt.state("second")
    assert done.status is sa.SagaStatus.COMPLETED
    assert failed.status is sa.SagaStatus.COMPENSATED
    assert first.applied == {"ok/a": 1, "no/a": 1}
    assert first.undone == {"no/a": 1}
    assert first.log == ["ok/a", "no/a", "undo no/a"]
    assert second.applied == {"ok/b": 1}  # the refused step applied nothing
    assert first.repeated() == second.repeated() == []


def test_repeated_names_a_key_applied_or_undone_twice() -> None:
    state = LedgerState(applied={"s/a": 2, "s/b": 1}, undone={"s/c": 2})
    assert state.repeated() == ["s/a", "s/c"]
