"""History reads one saga's records, not the journal: ``rt.history(id)``, ``ahistory`` and
``watch`` ask the journal for the records the saga caused (indexed in SQLite), never scan every
participant record; the async face reads off the event loop; and every entry is JSON-ready.

Before, each call scanned every participant record (146 ms at 10,000 sagas, blocking an async
server's loop), and ``msgspec.to_builtins(entry.event)`` raised on the msgpack payloads.
A journal written before the cause index existed (schema version 1) is upgraded on open.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.journal import Record
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SCHEMA_VERSION

WAIT = 30.0


class Job(msgspec.Struct, frozen=True):
    n: int
    fail: bool = False


class Receipt(msgspec.Struct, frozen=True):
    key: str
    n: int


class Noted(msgspec.Struct, frozen=True):
    key: str


class Book(msgspec.Struct):
    notes: int = 0


class Worked(msgspec.Struct, frozen=True):
    receipt: Receipt


class Clerk(sa.Participant[Book]):
    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> Book:
        return Book()

    @sa.action("note")
    def note(self, ctx: sa.StepContext, job: Job) -> Receipt:
        if job.fail and self.name == "second":
            raise sa.StepFailed(f"job {job.n} refused")
        ctx.record(Noted(ctx.idempotency_key))
        return Receipt(ctx.idempotency_key, job.n)

    @sa.compensation("note")
    def unnote(self, ctx: sa.StepContext, job: Job, done: Receipt) -> None:
        ctx.record(Noted(done.key + "/undone"))

    @sa.on(Job, emits=(Worked,))
    def on_job(self, ctx: sa.StepContext, job: Job) -> None:
        ctx.record(Noted(f"{ctx.saga_id}/on"))
        if self.name == "first":
            ctx.publish(Worked(Receipt(ctx.saga_id, job.n)))

    @sa.evolve
    def _noted(self, state: Book, change: Noted) -> None:
        state.notes += 1


SAGA = sa.Saga(
    "noting",
    [sa.Step("one", participant="first", action="note"), sa.Step("two", "second", "note")],
    input_type=Job,
)
FLOW = sa.Choreography("noting-flow", start=Job, completed=(Worked,))


class CountingJournal(MemoryJournal):
    """Counts whole-journal scans, and notes which threads read."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0
        self.readers: set[int] = set()

    def read_prefix(self, prefix: str) -> Iterator[Record]:
        self.scans += 1
        return super().read_prefix(prefix)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Record]:
        self.scans += 1
        return super().read_all(after, limit)

    def read_caused(self, saga_id: str, after: int = 0) -> list[Record]:
        self.readers.add(threading.get_ident())
        return super().read_caused(saga_id, after)


def clerks() -> list[sa.Participant[Any]]:
    return [Clerk("first"), Clerk("second")]


def fill(rt: sa.Runtime) -> None:
    """Sagas whose ids are prefixes of one another, in every mode, some compensated."""
    ids = [f"s{n}" for n in range(300)] + ["s1-x", "s1x", "s1.0"]
    for mode in ("orchestration", "choreography"):
        runs = rt.start_many(
            SAGA,
            [Job(n, fail=n % 3 == 0) for n in range(len(ids))],
            saga_ids=[f"{mode[0]}-{i}" for i in ids],
            mode=mode,
        )
        assert all(run.result(WAIT).status.terminal for run in runs)
    native = rt.start_many(
        FLOW, [Job(n) for n in range(50)], saga_ids=[f"n-s{n}" for n in range(50)]
    )
    assert all(run.result(WAIT).ok for run in native)


def expected_positions(rt: sa.Runtime, saga_id: str) -> list[int]:
    """The saga's records, found the slow way: by reading the whole journal."""
    every = rt.journal.read_all()
    return [
        r.position
        for r in every
        if r.stream == f"saga/{saga_id}"
        or (r.stream.startswith("participant/") and r.cause.startswith(f"{saga_id}/"))
    ]


@pytest.fixture(params=["sqlite", "memory"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Runtime]:
    if request.param == "sqlite":
        rt = sa.Runtime.open(tmp_path / "h.db", participants=clerks(), sagas=[SAGA, FLOW])
    else:
        rt = sa.Runtime.in_memory(participants=clerks(), sagas=[SAGA, FLOW])
    with rt:
        fill(rt)
        yield rt


def test_history_of_one_saga_among_many_is_exactly_its_records(runtime: sa.Runtime) -> None:
    for saga_id in ("o-s1", "o-s10", "o-s1-x", "c-s1", "c-s100", "c-s3", "n-s1", "n-s10"):
        history = runtime.history(saga_id)
        assert [e.position for e in history] == expected_positions(runtime, saga_id), saga_id
        assert history[0].type == "SagaStarted"
    with pytest.raises(sa.UnknownSaga):
        runtime.history("s1")  # a prefix of many ids, but no saga


@pytest.mark.parametrize("saga_id", ["o-s1", "o-s3", "c-s1", "c-s3", "n-s4"])
def test_every_entry_is_json_ready(runtime: sa.Runtime, saga_id: str) -> None:
    history = runtime.history(saga_id)
    for entry in history:
        msgspec.to_builtins(entry.event)  # raised on msgspec.Raw payloads before
    encoded = msgspec.json.encode([entry.to_builtins() for entry in history])
    assert msgspec.json.decode(encoded)[0]["event"]["input"]["n"] >= 0


def test_payloads_in_history_are_typed(runtime: sa.Runtime) -> None:
    history = runtime.history("o-s1")
    assert history[0].type == "SagaStarted"
    started: Any = history[0].event  # its ``input`` decoded (no longer msgspec.Raw)
    assert started.input == Job(1)
    succeeded = [e.event for e in history if e.type == "StepSucceeded"]
    assert [s.result for s in succeeded] == [Receipt("o-s1/one", 1), Receipt("o-s1/two", 1)]
    handled = [e.event for e in history if e.type == "sagactor.Handled"]
    assert [h.result for h in handled] == [Receipt("o-s1/one", 1), Receipt("o-s1/two", 1)]
    native = runtime.history("n-s2")
    assert [e.event for e in native if e.type == "Worked"] == [Worked(Receipt("n-s2", 2))]
    reactions = [e.event for e in native if e.type == "sagactor.Handled"]
    published = [emitted.data for h in reactions for emitted in h.result]
    assert published == [Worked(Receipt("n-s2", 2))]


def test_history_and_watch_never_scan_the_journal() -> None:
    journal = CountingJournal()
    with sa.Runtime.in_memory(journal=journal, participants=clerks(), sagas=[SAGA, FLOW]) as rt:
        fill(rt)
        journal.scans = 0
        assert len(rt.history("o-s7")) > 5

        async def watch_all() -> list[sa.HistoryEntry]:
            return [entry async for entry in rt.watch("c-s7")]

        watched = anyio.run(watch_all)
        assert [e.position for e in watched] == [e.position for e in rt.history("c-s7")]
        assert journal.scans == 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_reads_run_off_the_event_loop(backend: str) -> None:
    journal = CountingJournal()
    with sa.Runtime.in_memory(journal=journal, participants=clerks(), sagas=[SAGA, FLOW]) as rt:
        fill(rt)

        async def read() -> tuple[int, list[sa.HistoryEntry], sa.Outcome]:
            journal.readers.clear()
            return threading.get_ident(), await rt.ahistory("o-s2"), await rt.astatus("o-s2")

        loop_thread, history, status = anyio.run(read, backend=backend)
        assert journal.readers
        assert loop_thread not in journal.readers
        assert history == rt.history("o-s2")
        assert status == rt.status("o-s2") == rt.run("o-s2").result(WAIT)
        assert status.results["one"] == Receipt("o-s2/one", 2)
        msgspec.json.encode([e.to_builtins() for e in history])

        async def unknown() -> None:
            await rt.ahistory("nope")

        with pytest.raises(sa.UnknownSaga):
            anyio.run(unknown, backend=backend)


def test_a_version_1_journal_is_upgraded_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sa.Runtime.open(path, participants=clerks(), sagas=[SAGA]) as rt:
        before = rt.start(SAGA, Job(5), saga_id="old").result(WAIT)
        history = rt.history("old")
    conn = sqlite3.connect(path)  # make it what sagactor 0.1 wrote: no cause index, version 1
    conn.execute("DROP INDEX events_cause")
    for view in ("saga_events", "saga_summaries"):  # and none of version 3's additions
        conn.execute(f"DROP VIEW {view}")
    conn.execute("DROP TABLE sagas")
    conn.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with sa.Runtime.open(path, participants=clerks(), sagas=[SAGA]) as rt:
        assert rt.history("old") == history
        assert rt.run("old").result(WAIT) == before
        assert rt.start(SAGA, Job(6), saga_id="new").result(WAIT).ok
    conn = sqlite3.connect(path)
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    conn.close()
    assert "events_cause" in indexes
    assert version == SCHEMA_VERSION
