"""1,000 sleeping sagas survive a real ``kill -9`` and wake on time after reopening.

A child process starts 1,000 sagas that each hold money, sleep ``NAP`` seconds, then charge;
once all are asleep it says so and the parent kills it with SIGKILL. Reopening the SQLite
journal re-arms each sleep at its journaled due time (the clock is not restarted): every saga
completes, charged once, no earlier than its due time and soon after it.

The child is this module run as a script: ``python -m tests.test_sleep_after_kill DB``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import sagactor as sa
from sagactor.messages import SleepStarted

from .killed_child import run_until_killed, wait_to_be_killed
from .test_waits import Bank, Ledger, sleepy

SAGAS = 1000
NAP = 4.0
MARGIN = 1.5  # seconds after its due time by which a saga must have completed


def child(path: str) -> None:
    rt = sa.Runtime.open(path, participants=[Bank()], sagas=[sleepy(NAP)])
    runs = rt.start_many("sleepy", [f"o{i}" for i in range(SAGAS)])
    while not all(rt.status(r.id).reason.startswith("sleeping") for r in runs[-10:]):
        time.sleep(0.01)
    wait_to_be_killed("asleep")


def test_a_kill_9_of_1000_sleeping_sagas_wakes_them_on_time(tmp_path: Path) -> None:
    path = tmp_path / "sleepers.db"
    assert run_until_killed("tests.test_sleep_after_kill", path, "asleep") == []
    time.sleep(0.5)  # down for a while: the naps go on meanwhile
    reopening = time.time()
    with sa.Runtime.open(path, participants=[Bank()], sagas=[sleepy(NAP)]) as rt:
        reopened = time.time()
        rows = rt.list(limit=SAGAS + 1).rows
        assert len(rows) == SAGAS
        for row in rows:
            assert rt.run(row.id).result(30).ok
        finished = time.time()
        ledger: Ledger = rt.state("bank")
        assert len(ledger.charged) == SAGAS
        assert max(Counter(ledger.charged).values()) == 1
        woke: list[tuple[float, float]] = []  # (journaled due, completed at) per saga
        for row in rows:
            history = rt.history(row.id)
            due = next(e.event.due for e in history if isinstance(e.event, SleepStarted))
            woke.append((due, next(e.ts for e in history if e.type == "SagaCompleted")))
    assert all(due > reopening for due, _ in woke), "the naps should outlast the kill"
    # Each woke at its journaled due time (never before it), not NAP seconds after reopening.
    late = max(completed - due for due, completed in woke)
    assert min(completed - due for due, completed in woke) >= 0
    assert late < MARGIN, (late, reopened - reopening)
    assert max(due for due, _ in woke) < reopening + NAP - 0.4, "the clock was restarted"
    assert finished - reopening < NAP + MARGIN


if __name__ == "__main__":
    child(sys.argv[1])
