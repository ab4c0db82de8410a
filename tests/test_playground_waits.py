"""The playground's timeline reads sleeps, waits, signals, the queue and the operators' events.

Why: a timeline that prints ``SleepStarted {...}`` as raw structs (or calls a sleeping saga
"in flight: step nap sent, no answer recorded") tells an operator nothing; each of these events
has a line of its own, and the saga's "now" says what it waits for.
"""

from __future__ import annotations

import re
import time

import msgspec

import sagactor as sa
from sagactor.history import HistoryEntry
from sagactor.messages import RecoveryAttempted, SagaDead, SagaRevived
from sagactor.playground.render.timelines import timeline

from .test_admission import Turnstile


def _has(text: str, *cells: str) -> bool:
    """A line of ``text`` holds ``cells`` in order, in columns (two spaces or more apart)."""
    return re.search(r" {2,}".join(re.escape(cell) for cell in cells), text) is not None


def _napping() -> sa.Saga:
    return sa.Saga(
        "napping",
        [
            sa.Step("enter", "turnstile", "enter"),
            sa.Sleep("nap", 0.05),
            sa.WaitFor("go", timeout=60),
            sa.Step("leave", "turnstile", "leave", compensable=False),
        ],
        input_type=str,
        max_in_flight=1,
    )


def test_a_queued_sleeping_signalled_saga_reads_plainly() -> None:
    saga = _napping()
    with sa.Runtime.in_memory(participants=[Turnstile()], sagas=[saga]) as rt:
        rt.start(saga, "a", saga_id="a")
        rt.start(saga, "b", saga_id="b")
        queued = timeline("b", rt.history("b"), saga)
        assert _has(queued, "saga QUEUED", "waiting for a slot (priority 0, #1)")
        assert "now:    queued: waiting for a slot" in queued
        deadline = time.time() + 5
        while "waiting for 'go'" not in rt.status("a").reason:
            assert time.time() < deadline
            time.sleep(0.01)
        waiting = timeline("a", rt.history("a"), saga)
        assert "now:    waiting for 'go' until" in waiting
        assert _has(waiting, "sleep", "nap until")
        assert _has(waiting, "wait", "go for signal 'go', until")
        assert _has(waiting, "go", "sagactor.wait", "1", "waiting for 'go'")  # the step table
        for saga_id in ("a", "b"):
            rt.signal(saga_id, "go", {"by": "ann"}, signal_id=f"{saga_id}-1")
            assert rt.run(saga_id).result(5).ok
        done = timeline("b", rt.history("b"), saga)
        assert _has(done, "saga admitted", "got a slot after")
        assert _has(done, "signal received", "'go' (id b-1) {by: ann}")
        assert "SleepStarted" not in done
        assert "SagaQueued" not in done


def test_dead_letters_and_recoveries_read_plainly() -> None:
    def entry(position: int, event: object) -> HistoryEntry:
        name = type(event).__name__
        return HistoryEntry(position, 1000.0 + position, "coordinator", name, event, "")

    with sa.Runtime.in_memory(participants=[Turnstile()], sagas=[_napping()]) as rt:
        rt.start("napping", "x", saga_id="x")
        entries = list(rt.history("x")[:1])
    entries += [
        entry(10, RecoveryAttempted(attempt=5)),
        entry(11, SagaDead(reason="5 recoveries in a row", attempts=5, was="running")),
        entry(12, SagaRevived(status="running")),
    ]
    text = timeline("x", entries, _napping())
    assert _has(text, "recovery", "resumed it (attempt 5 in a row without progress)")
    assert _has(text, "saga DEAD", "5 recoveries in a row (was running)")
    assert _has(text, "saga revived", "by operator, running again")
    assert msgspec.json.encode(entries[-1].event)  # still plain data
