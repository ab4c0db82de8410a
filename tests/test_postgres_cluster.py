"""Several runtimes on one PostgreSQL journal: one active (it holds the lease), the others
standbys. A standby forwards starts and reads outcomes; it takes over when the active one is
killed (at once: its session ends) or paused past its lease (on expiry), and finishes the
sagas in flight with no effect applied twice; the paused one, resumed, is fenced.

The active runtime is a child process (``tests.cluster_child``), killed with SIGKILL or frozen
with SIGSTOP; the standby is opened here. Leases are short (``LEASE`` seconds)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import psycopg
import pytest

import sagactor as sa
from sagactor.persistence.journal import Record
from sagactor.persistence.postgres import SCHEMA_VERSION, PostgresJournal

from .warehouse import open_runtime, problems, shipment, shipping

ROOT = Path(__file__).resolve().parent.parent
LEASE = 1.5
MARGIN = 2.0  # a standby's look at the lease, recovery, a loaded machine


class Child:
    """The active runtime in a process of its own; ids it acknowledged arrive on a queue."""

    def __init__(self, url: str, prefix: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster_child", url, prefix, str(LEASE)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.ids: list[str] = []
        self.last = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.next_line(30) == "ready", self.stderr()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self, timeout: float) -> str | None:
        line = self.lines.get(timeout=timeout)
        if line is not None and line != "ready":
            if line.startswith("died "):
                self.last = line
            else:
                self.ids.append(line)
        return line

    def wait_for(self, count: int) -> None:
        while len(self.ids) < count:
            if self.next_line(30) is None:
                pytest.fail(f"the child ended early:\n{self.stderr()}")

    def drain(self) -> None:
        """Every line it printed before it ended."""
        while self.next_line(30) is not None:
            pass

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._reader.join(30)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.process.send_signal(signal.SIGCONT)
        child.stop()


def _standby(url: str, notices: list[sa.Notice] | None = None) -> sa.Runtime:
    listeners: list[sa.Listener] = [] if notices is None else [notices.append]
    return open_runtime(url, standby=True, lease=LEASE, listeners=listeners)


def test_a_second_runtime_is_a_standby_that_forwards_starts_and_reads_outcomes(
    pg_url: str, children: list[Child]
) -> None:
    active = Child(pg_url, "a-")
    children.append(active)
    with pytest.raises(sa.JournalLocked):
        open_runtime(pg_url, lease=LEASE)  # without standby=True: refused, as before
    with _standby(pg_url) as standby:
        assert standby.role == "standby"
        assert not standby.wait_active(0.1)
        latencies = []
        runs = []
        for number in range(10):
            started = time.perf_counter()
            runs.append(standby.start(shipping, shipment(number, "s-"), saga_id=f"s-ship-{number}"))
            latencies.append(time.perf_counter() - started)
        outcomes = [run.result(30) for run in runs]
        assert [o.status for o in outcomes] == [
            sa.SagaStatus.COMPENSATED if n % 4 == 3 else sa.SagaStatus.COMPLETED for n in range(10)
        ]
        entries = standby.history("s-ship-0")
        assert entries[0].type == "SagaStarted"
        assert any(e.source == "warehouse" for e in entries)  # run by the active one
        assert standby.list(saga="shipping", limit=1000).rows
        with pytest.raises(sa.NotActive, match="standby"):
            standby.cancel("s-ship-1")
        with pytest.raises(sa.NotActive):
            standby.state("warehouse")
        # The same id again: the same run; refused ones are reported by the handle.
        assert (
            standby.start(shipping, shipment(0, "s-"), saga_id="s-ship-0").result(30)
            == (outcomes[0])
        )
        conflict = standby.start(shipping, shipment(5, "s-"), saga_id="s-ship-0")
        with pytest.raises(sa.OperationRefused, match="SagaIdConflict"):
            conflict.result(30)
        asynchronous = anyio.run(_astart, standby)  # the async face forwards too
        assert asynchronous.status is sa.SagaStatus.COMPLETED
        print(f"\nstart forwarded by a standby: {max(latencies) * 1000:.1f} ms at most")


async def _astart(standby: sa.Runtime) -> sa.Outcome:
    run = await standby.astart(shipping, shipment(20, "s-"), saga_id="s-ship-20")
    return await run.wait(30)


def test_a_standby_takes_over_a_killed_runtime_and_finishes_its_sagas(
    pg_url: str, children: list[Child]
) -> None:
    active = Child(pg_url, "k-")
    children.append(active)
    notices: list[sa.Notice] = []
    with _standby(pg_url, notices) as standby:
        forwarded = [
            standby.start(shipping, shipment(n, "f-"), saga_id=f"f-ship-{n}").id for n in range(6)
        ]
        active.wait_for(30)
        killed = time.monotonic()
        active.process.send_signal(signal.SIGKILL)
        assert standby.wait_active(LEASE + MARGIN), "no takeover within the lease and margin"
        took = time.monotonic() - killed
        active.stop()
        active.drain()
        assert standby.role == "active"
        assert problems(standby, active.ids + forwarded) == []
        finished = time.monotonic() - killed
        resumed = [n for n in notices if isinstance(n, sa.RecoveryNotice)][-1].resumed
        assert resumed, "nothing was in flight at the kill: the test proves nothing"
        print(
            f"\ntakeover after SIGKILL: {took * 1000:.0f} ms; {len(resumed)} in-flight sagas "
            f"finished {finished * 1000:.0f} ms after the kill"
        )


def test_a_paused_runtime_is_taken_over_on_expiry_and_fenced_when_it_wakes(
    pg_url: str, children: list[Child]
) -> None:
    active = Child(pg_url, "p-")
    children.append(active)
    with _standby(pg_url) as standby:
        active.wait_for(20)
        paused = time.monotonic()
        active.process.send_signal(signal.SIGSTOP)
        assert standby.wait_active(LEASE + MARGIN + LEASE), "no takeover of the paused one"
        took = time.monotonic() - paused
        # Its database session lives on: only the lease's expiry let the standby in.
        assert took > LEASE / 2
        active.process.send_signal(signal.SIGCONT)
        # Woken, it finds itself fenced at its next lease renewal and exits 3 (a loaded machine
        # can delay that renewal past one lease: the exit, not its speed, is what is asserted).
        assert active.process.wait(3 * LEASE + MARGIN) == 3, active.stderr()
        active.drain()
        assert "fenced" in active.last, active.last
        assert problems(standby, active.ids) == []
        print(f"\ntakeover of a paused runtime: {took * 1000:.0f} ms (lease {LEASE} s)")


def test_a_writer_whose_lease_was_taken_over_writes_nothing(pg_url: str) -> None:
    first = PostgresJournal(pg_url, lease=0.5)
    try:
        first.append_and_wait([_record("s", 1, "first")])
        first._keeper.stop()  # as if paused: no more heartbeats
        second = PostgresJournal(pg_url, standby=True, lease=0.5)
        assert second.role in ("standby",)
        promoted = threading.Event()
        second.on_promoted = promoted.set
        second.wait_for_lease()
        assert promoted.wait(5)
        assert second.role in ("active",)  # promoted
        with pytest.raises(sa.JournalFenced, match="another runtime took the journal over"):
            first.append_and_wait([_record("s", 2, "first")])
        second.append_and_wait([_record("s", 2, "second")])
        assert [(r.seq, r.cause) for r in second.read("s")] == [(1, "first"), (2, "second")]
        second.close()
    finally:
        first.kill()


def _record(stream: str, seq: int, cause: str) -> Record:
    return Record(stream, seq, "Evt", b"\x90", 1.0, cause)


def test_version_2_journal_is_upgraded_to_leases(pg_url: str) -> None:
    with open_runtime(pg_url) as rt:
        rt.start(shipping, shipment(0), saga_id="old").result(10)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # back to what version 2 made
        conn.execute("DROP TABLE sagactor.leases, sagactor.starts")
        conn.execute("UPDATE sagactor.meta SET value = '2' WHERE key = 'schema_version'")
    with open_runtime(pg_url, lease=LEASE) as rt:
        assert rt.status("old").status is sa.SagaStatus.COMPLETED
        with _standby(pg_url) as standby:  # the lease works on the upgraded journal
            assert standby.role == "standby"
            assert standby.start(shipping, shipment(1), saga_id="new").result(10).status is (
                sa.SagaStatus.COMPLETED
            )
    with psycopg.connect(pg_url) as conn:
        found = conn.execute("SELECT value FROM sagactor.meta WHERE key = 'schema_version'")
        assert found.fetchone() == (str(SCHEMA_VERSION),) == ("4",)
