"""The multi-process kill soak, small enough for CI: 3 workers sharing one PostgreSQL
database's partitions, 10 SIGKILLs (``make soak-pg`` runs 100): every acknowledged saga ends,
no effect is applied twice, stock and money balance in every partition. And a worker frozen
(SIGSTOP) past its lease: the other takes its partitions over; resumed, it is fenced (its
partitions' writes refused), replaces them with standbys and goes on, with nothing applied
twice."""

from __future__ import annotations

import signal
import time

import pytest

from .soak_pg import LEASE, PARTITIONS, Worker, check, open_worker, soak


@pytest.mark.timeout(600)
def test_ten_kills_of_three_workers_lose_nothing_and_apply_nothing_twice(pg_url: str) -> None:
    # A kill 0.5-1.5 s after the last restart was ready (``make soak-pg``: 1.5-3 s): a restart
    # takes seconds of its own, so a worker is still killed every few seconds, sagas in flight.
    report = soak(pg_url, 10, seed=16, every=(0.5, 1.5), log=lambda line: None)
    assert report.violations == []
    assert report.kills == 10
    assert report.acknowledged > 100


@pytest.mark.timeout(300)
def test_a_worker_frozen_past_its_lease_is_fenced_and_its_partitions_go_on_elsewhere(
    pg_url: str,
) -> None:
    acked: list[str] = []
    frozen = Worker(pg_url, "f-", acked)
    try:
        assert frozen.ready.get(timeout=60), frozen.stderr_tail
        with open_worker(pg_url) as other:
            assert other.wait_holding(PARTITIONS // 2, 20 * LEASE), other.held
            time.sleep(LEASE)  # sagas in flight in both
            frozen.process.send_signal(signal.SIGSTOP)
            began = time.monotonic()
            assert other.wait_holding(PARTITIONS, 20 * LEASE), other.held
            took = time.monotonic() - began
            before = len(acked)
            frozen.process.send_signal(signal.SIGCONT)
            # Woken, it finds its partitions taken over, and it goes on (forwarding starts).
            deadline = time.monotonic() + 30 * LEASE
            while frozen.taken_over == 0 or len(acked) < before + 20:
                assert time.monotonic() < deadline, (frozen.taken_over, frozen.stderr_tail)
                assert frozen.process.poll() is None, frozen.stderr_tail
                time.sleep(0.1)
            print(f"\nfrozen worker's partitions taken over {took:.1f} s after SIGSTOP")
    finally:
        frozen.kill()
    assert check(pg_url, list(acked)) == []
