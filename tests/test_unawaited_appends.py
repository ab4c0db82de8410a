"""The writer (SQLite and PostgreSQL) holds a group of unawaited appends back a moment, so that
the awaited append that follows shares its commit; it never holds an awaited one, nor a close.

``UNAWAITED_WAIT`` is stretched here (seconds instead of milliseconds) so that what is shared,
and what is not, does not depend on the machine's speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.journal import DoneCallback, Journal
from sagactor.persistence.postgres import PostgresJournal, writes
from sagactor.persistence.sqlite import SqliteJournal, intake
from sagactor.testing.journal_contract import record

WAIT = 30.0


class Answers:
    """Collects the answers of appends, by tag."""

    def __init__(self) -> None:
        self.got: dict[str, BaseException | None] = {}
        self.when: dict[str, float] = {}
        self._lock = threading.Lock()

    def to(self, tag: str) -> DoneCallback:
        def on_done(error: BaseException | None) -> None:
            with self._lock:
                self.got[tag] = error
                self.when[tag] = time.monotonic()

        return on_done

    def wait(self, *tags: str) -> None:
        deadline = time.monotonic() + WAIT
        while not all(tag in self.got for tag in tags):
            assert time.monotonic() < deadline, f"unanswered: {set(tags) - set(self.got)}"
            time.sleep(0.005)


class Backend:
    """Where a test's journal lives, and how its held-back wait is stretched."""

    def __init__(self, name: str, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.name, self.where, self._monkeypatch = name, where, monkeypatch

    def stretch(self, seconds: float) -> None:
        self._monkeypatch.setattr(
            intake if self.name == "sqlite" else writes, "UNAWAITED_WAIT", seconds
        )

    def open(self) -> Journal:
        return SqliteJournal(self.where) if self.name == "sqlite" else PostgresJournal(self.where)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "j.db"), monkeypatch)
    return Backend("postgres", request.getfixturevalue("pg_url"), monkeypatch)


@pytest.fixture
def journal(backend: Backend) -> Iterator[Journal]:
    backend.stretch(1.0)
    journal = backend.open()
    yield journal
    journal.close()


def test_an_awaited_append_joins_the_held_unawaited_one_in_one_commit(
    journal: Journal,
) -> None:
    answers = Answers()
    before = journal.stats.commits
    journal.append_unawaited([record("saga/a", 1)], answers.to("decision"))
    time.sleep(0.1)  # the writer has taken it and holds it
    assert answers.got == {}
    journal.append([record("participant/p", 1)], answers.to("reply"))
    answers.wait("decision", "reply")
    assert answers.got == {"decision": None, "reply": None}
    assert journal.stats.commits == before + 1
    assert [r.seq for r in journal.read("saga/a")] == [1]


def test_an_unawaited_append_alone_is_committed_after_the_wait(journal: Journal) -> None:
    answers = Answers()
    began = time.monotonic()
    journal.append_unawaited([record("saga/a", 1)], answers.to("decision"))
    answers.wait("decision")
    assert answers.got["decision"] is None
    assert 0.5 <= answers.when["decision"] - began < WAIT
    assert journal.last_seq("saga/a") == 1


def test_an_awaited_append_is_never_held(journal: Journal) -> None:
    answers = Answers()
    began = time.monotonic()
    journal.append([record("participant/p", 1)], answers.to("reply"))
    answers.wait("reply")
    assert answers.when["reply"] - began < 0.5  # nowhere near the (stretched) wait
    assert journal.stats.commits == 1


@pytest.mark.parametrize("end", ["close", "kill"])
def test_an_end_does_not_wait_for_company(backend: Backend, end: str) -> None:
    """A close writes the held append at once; a kill drops it, as a crash would."""
    backend.stretch(60.0)
    journal = backend.open()
    answers = Answers()
    journal.append_unawaited([record("saga/a", 1)], answers.to("decision"))
    time.sleep(0.1)
    began = time.monotonic()
    if end == "close":
        journal.close()
    else:
        journal.kill()
    assert time.monotonic() - began < WAIT / 2
    with backend.open() as again:
        stored = [r.seq for r in again.read("saga/a")]
    if end == "close":
        assert answers.got == {"decision": None}
        assert stored == [1]
    else:
        assert answers.got == {}  # a dead process answers nobody
        assert stored == []


def test_a_failed_held_append_fails_alone(journal: Journal) -> None:
    answers = Answers()
    journal.append_and_wait([record("saga/a", 1)])
    journal.append_unawaited([record("saga/a", 3)], answers.to("gap"))  # not the stream's next
    journal.append([record("participant/p", 1)], answers.to("reply"))
    answers.wait("gap", "reply")
    assert isinstance(answers.got["gap"], sa.StreamConflict)
    assert answers.got["reply"] is None


class _Did(msgspec.Struct, frozen=True):
    pass


class _Undid(msgspec.Struct, frozen=True):
    pass


class _Step(sa.Participant[int]):
    """A participant of this test's own: counts its steps."""

    def __init__(self, name: str) -> None:
        self.name = name

    def initial_state(self) -> int:
        return 0

    @sa.action("do")
    def do(self, ctx: sa.StepContext, n: int) -> int:
        ctx.record(_Did())
        return n

    @sa.compensation("do")
    def undo(self, ctx: sa.StepContext, n: int, done: int) -> None:
        ctx.record(_Undid())

    @sa.evolve
    def _did(self, state: int, change: _Did) -> int:
        return state + 1

    @sa.evolve
    def _undid(self, state: int, change: _Undid) -> int:
        return state - 1


def test_a_saga_alone_syncs_once_per_step(backend: Backend) -> None:
    """Each 'step succeeded, start the next' decision shares the commit of the record its
    command causes: start, 3 steps and the end take 5 commits, not 7."""
    backend.stretch(5.0)  # the record always comes within it
    names = ("a", "b", "c")
    three = sa.Saga("three", steps=[sa.Step(name, participant=name, action="do") for name in names])
    with sa.Runtime.open(
        backend.where, participants=[_Step(n) for n in names], sagas=[three]
    ) as rt:
        journal: Any = rt.journal
        assert isinstance(journal, SqliteJournal | PostgresJournal)
        rt.start(three, 1).result(WAIT)  # warm: the first snapshot, caches
        commits = journal.stats.commits
        outcome = rt.start(three, 2).result(WAIT)
        assert outcome.ok
        # 1 start + 3 participants' records (2 joined by the decision before them) + 1 end.
        assert journal.stats.commits - commits == 5
