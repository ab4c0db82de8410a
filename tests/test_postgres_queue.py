"""The queue under ``max_in_flight`` on a PostgreSQL journal: its events (``SagaQueued``,
``SagaAdmitted``) are stored like any saga event (no schema change), the ``sagas`` table says
``queued``, and a reopened runtime keeps the queue's order and the limit."""

from __future__ import annotations

import pytest

import sagactor as sa

from .test_admission import Gate, Turnstile, gated


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_a_queue_on_postgres_survives_a_crash_in_order(pg_url: str, mode: sa.Mode) -> None:
    saga = gated(1, wait=True)
    rt = sa.Runtime.open(pg_url, participants=[Turnstile()], sagas=[saga])
    for name, priority in [("p1", 0), ("p2", 0), ("p3", 0), ("p4", 3)]:
        rt.start(saga, name, saga_id=name, mode=mode, priority=priority)
    assert rt.counts()["queued"] == 3
    assert {row.id for row in rt.list("queued").rows} == {"p2", "p3", "p4"}
    rt.crash()
    rt.close()
    with sa.Runtime.open(pg_url, participants=[Turnstile()], sagas=[saga]) as again:
        assert "position 1 of 3" in again.status("p4").reason
        for name in ("p4", "p2", "p3", "p1"):
            again.signal(name, "go", None)
        for name in ("p1", "p2", "p3", "p4"):
            assert again.run(name).result(20).ok
        gate: Gate = again.state("turnstile")
        assert gate.entered == ["p1", "p4", "p2", "p3"]
        assert gate.most == 1
