"""A damaged journal is refused clearly, and a refused open leaves no file of its own behind.

Before, a journal file with damaged pages made ``Runtime.open`` raise a raw
``sqlite3.DatabaseError: database disk image is malformed``, and a refused open left ``-wal``,
``-shm`` or ``.lock`` files beside the user's file. Now damage is ``JournalCorrupt``; a refused
open removes the side files it created, and only those: a lock another runtime holds is never
touched, and a WAL that a killed process left full of acknowledged sagas loses nothing.

The child that a test kills is this module run as a script.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path

import msgspec
import pytest

import sagactor as sa

from .killed_child import run_until_killed

WAIT = 10.0
PAGE = 4096


class Parcel(msgspec.Struct, frozen=True):
    to: str


class Post(sa.Participant[None]):
    name = "post"

    def __init__(self, stall: threading.Event | None = None) -> None:
        self.stall = stall

    @sa.action("send")
    def send(self, ctx: sa.StepContext, parcel: Parcel) -> str:
        if self.stall is not None:
            self.stall.wait(WAIT)
        return parcel.to

    @sa.compensation("send")
    def recall(self, ctx: sa.StepContext, parcel: Parcel, done: str) -> None:
        pass


DELIVERY = sa.Saga("delivery", [sa.Step("send", "post", "send")], input_type=Parcel)


def files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def make_journal(db: Path, count: int = 300) -> None:
    with sa.Runtime.open(db, participants=[Post()], sagas=[DELIVERY]) as rt:
        runs = rt.start_many(DELIVERY, [Parcel("x" * 200) for _ in range(count)])
        assert all(run.result(WAIT).ok for run in runs)


@pytest.mark.parametrize("first", [1, 10], ids=["schema-too", "data-only"])
def test_damaged_pages_are_journal_corrupt_and_leave_no_side_files(
    tmp_path: Path, first: int
) -> None:
    db = tmp_path / "post.db"
    make_journal(db)
    os.remove(f"{db}.lock")  # as if the file had been copied here alone
    # Damage every other page from the ``first`` on: 0 holds the schema, 1-9 the tables' roots
    # (meta among them), so from 10 on only the data is damaged and the file opens.
    with open(db, "r+b") as file:
        for page in range(first, db.stat().st_size // PAGE, 2):
            file.seek(page * PAGE)
            file.write(bytes([0xA5]) * 64)
    before = files(tmp_path)
    with pytest.raises(sa.JournalCorrupt) as refused:
        sa.Runtime.open(db, participants=[Post()], sagas=[DELIVERY])
    assert "damaged" in str(refused.value)
    assert isinstance(refused.value.__cause__, sqlite3.DatabaseError)  # kept, for the curious
    assert files(tmp_path) == before == {"post.db"}


def test_a_refused_open_removes_only_what_it_created(tmp_path: Path) -> None:
    db = tmp_path / "post.db"
    make_journal(db, 3)
    os.remove(f"{db}.lock")
    before = files(tmp_path)
    with pytest.raises(sa.DefinitionError):  # refused after the journal was opened
        sa.Runtime.open(db, participants=[Post(), Post()], sagas=[DELIVERY])
    assert files(tmp_path) == before
    with sa.Runtime.open(db, participants=[Post()], sagas=[DELIVERY]) as rt:
        assert len(rt.saga_ids()) == 3


def test_a_refused_open_leaves_the_lock_of_the_runtime_that_holds_it(tmp_path: Path) -> None:
    db = tmp_path / "post.db"
    with sa.Runtime.open(db, participants=[Post()], sagas=[DELIVERY]) as holder:
        with pytest.raises(sa.JournalLocked):
            sa.Runtime.open(db, participants=[Post()], sagas=[DELIVERY])
        assert (tmp_path / "post.db.lock").exists()
        assert holder.start(DELIVERY, Parcel("a")).result(WAIT).ok
        with pytest.raises(sa.JournalLocked):  # still held, still refused
            sa.Runtime.open(db, participants=[Post()], sagas=[DELIVERY])


def child(db: Path) -> None:
    """Start sagas that stall, say so, and wait to be killed (leaving the WAL behind)."""
    rt = sa.Runtime.open(db, participants=[Post(threading.Event())], sagas=[DELIVERY])
    runs = rt.start_many(DELIVERY, [Parcel(f"p{i}") for i in range(50)])
    print(f"ack {len(runs)}", flush=True)
    threading.Event().wait(60)


@pytest.mark.timeout(120)
def test_a_refused_open_loses_nothing_a_killed_process_left_in_the_wal(tmp_path: Path) -> None:
    db = tmp_path / "post.db"
    assert run_until_killed("tests.test_damaged_journal", db, "ack 50") == []
    assert {"post.db-wal", "post.db-shm"} <= files(tmp_path)  # the sagas are in the WAL
    before = files(tmp_path)
    with pytest.raises(sa.DefinitionError):
        sa.Runtime.open(db, participants=[Post(), Post()], sagas=[DELIVERY])
    # Nothing new is left; the WAL may have gone, but only into the file (SQLite's checkpoint).
    assert files(tmp_path) <= before
    with sa.Runtime.open(db, participants=[Post()], sagas=[DELIVERY]) as rt:
        ids = rt.saga_ids()
        assert len(ids) == 50
        assert all(rt.run(saga_id).result(WAIT).ok for saga_id in ids)
    check = sqlite3.connect(db)
    try:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()


if __name__ == "__main__":
    child(Path(sys.argv[1]))
