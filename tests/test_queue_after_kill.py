"""A queue under ``max_in_flight`` survives a real ``kill -9``, order and limit intact.

A child process starts 40 sagas of a saga limited to 3 at once (each enters a turnstile,
sleeps, leaves), the later ones at a higher priority, and prints each id once ``start``
returned (acknowledged, so durable); the parent kills it with SIGKILL while most still wait
in the queue. Reopening the SQLite journal: every acknowledged saga completes, each entered
the turnstile once, never more than 3 inside at once (the turnstile's own journaled count),
and the queued ones were admitted priority first, then in the order they were queued.

The child is this module run as a script: ``python -m tests.test_queue_after_kill DB``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import sagactor as sa
from sagactor.messages import SagaAdmitted, SagaQueued

from .killed_child import run_until_killed, wait_to_be_killed
from .test_admission import Gate, Turnstile, gated

SAGAS = 40
LIMIT = 3


def child(path: str) -> None:
    rt = sa.Runtime.open(path, participants=[Turnstile()], sagas=[gated(LIMIT, pause=0.3)])
    for i in range(SAGAS):
        rt.start("gated", f"o{i:02}", saga_id=f"o{i:02}", priority=int(i >= SAGAS // 2))
        print(f"o{i:02}", flush=True)
    wait_to_be_killed("started")


def test_a_kill_9_keeps_the_queue_its_order_and_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    acknowledged = run_until_killed("tests.test_queue_after_kill", path, "started")
    assert len(acknowledged) == SAGAS
    with sa.Runtime.open(path, participants=[Turnstile()], sagas=[gated(LIMIT, pause=0.3)]) as rt:
        queued = [s for s in acknowledged if rt.status(s).status == sa.SagaStatus.QUEUED]
        assert len(queued) >= SAGAS - 2 * LIMIT, "the kill should find most of them queued"
        for saga_id in acknowledged:
            assert rt.run(saga_id).result(60).ok
        gate: Gate = rt.state("turnstile")
        assert sorted(gate.entered) == sorted(acknowledged)  # each once
        assert gate.most <= LIMIT
        admitted = {}
        for saga_id in queued:
            history = rt.history(saga_id)
            assert sum(isinstance(e.event, SagaQueued) for e in history) == 1
            admissions = [e for e in history if isinstance(e.event, SagaAdmitted)]
            assert len(admissions) == 1
            admitted[saga_id] = admissions[0].position
    order = sorted(queued, key=admitted.__getitem__)
    expected = sorted(queued, key=lambda s: (int(s[1:]) < SAGAS // 2, s))
    assert order == expected


if __name__ == "__main__":
    child(sys.argv[1])
