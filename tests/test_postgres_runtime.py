"""Sagas of the tests' own domain on a PostgreSQL journal: started in both modes, crashed
in-process and killed with SIGKILL, then recovered by a new runtime: every acknowledged saga
ends the way its input says, no effect is applied twice, and the books balance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import sagactor as sa
from sagactor.persistence.postgres import PostgresJournal

from .warehouse import MODES, open_runtime, problems, shipment, shipping

ROOT = Path(__file__).resolve().parent.parent


def _in_flight(url: str) -> list[str]:
    with PostgresJournal(url) as journal:
        return journal.open_streams("saga/")


@pytest.mark.parametrize("mode", MODES)
def test_sagas_cut_short_by_a_crash_all_end_after_reopening(pg_url: str, mode: sa.Mode) -> None:
    rt = open_runtime(pg_url)
    rt.arm(sa.CrashPoint.AFTER_COMMIT, 40)  # dies amid the work, as a process would
    acknowledged: list[str] = []
    for number in range(60):
        order = shipment(number)
        try:
            acknowledged.append(rt.start(shipping, order, saga_id=order.id, mode=mode).id)
        except sa.RuntimeCrashed:
            break
    assert rt.crashed
    rt.close()
    assert 0 < len(acknowledged) < 60
    assert _in_flight(pg_url), "the crash left nothing to recover: the test proves nothing"
    with open_runtime(pg_url) as recovered:
        assert problems(recovered, acknowledged) == []
        # A start committed just before the crash was never acknowledged: it resumes too.
        for stream in recovered.journal.open_streams("saga/"):
            assert recovered.run(stream.removeprefix("saga/")).result(30).status.terminal
    assert _in_flight(pg_url) == []


def test_a_batch_killed_right_after_its_start_is_finished_by_the_next_runtime(
    pg_url: str,
) -> None:
    rt = open_runtime(pg_url)
    orders = [shipment(number) for number in range(30)]
    runs = rt.start_many(shipping, orders, saga_ids=[o.id for o in orders], mode="choreography")
    rt.crash()  # kill -9: queued writes are lost, nothing else runs
    rt.close()
    with open_runtime(pg_url) as recovered:
        assert problems(recovered, [run.id for run in runs]) == []


def test_a_process_killed_with_sigkill_loses_nothing(pg_url: str) -> None:
    acknowledged: list[str] = []
    for round_ in range(3):  # each child also recovers what the previous one left
        acknowledged += _run_and_kill(pg_url, prefix=f"r{round_}-", after=12)
        assert _in_flight(pg_url), "the kill left nothing to recover: the test proves nothing"
    assert len(acknowledged) >= 36
    with open_runtime(pg_url) as rt:
        assert problems(rt, acknowledged) == []


def _run_and_kill(url: str, *, prefix: str, after: int) -> list[str]:
    """Run the child until it has acknowledged ``after`` sagas, SIGKILL it; every id it
    printed (its start had returned)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.warehouse", url, prefix],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    try:
        lines: list[str] = []
        while len(lines) < after + 1:  # "ready", then the ids
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"the child ended early:\n{child.stderr.read()}")
            lines.append(line.strip())
        assert lines[0] == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        rest, _ = child.communicate()
        return lines[1:] + rest.split()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_create_false_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    with pytest.raises(sa.JournalError, match="does not exist"):
        sa.Runtime.open(missing, create=False)
    assert not missing.exists()
    sa.Runtime.open(missing).close()
    sa.Runtime.open(missing, create=False).close()
